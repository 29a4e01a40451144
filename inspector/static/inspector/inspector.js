// "Copy as Mermaid": fetch the text endpoint and put it on the clipboard; without the
// clipboard API the link simply opens the text.
(function () {
  "use strict";
  document.addEventListener("click", async function (event) {
    const link = event.target.closest("[data-copy-from]");
    if (!link || !navigator.clipboard) return;
    event.preventDefault();
    try {
      const response = await fetch(link.dataset.copyFrom, { credentials: "same-origin" });
      await navigator.clipboard.writeText(await response.text());
      const label = link.textContent;
      link.textContent = "Copied";
      setTimeout(function () { link.textContent = label; }, 1500);
    } catch (error) {
      window.location.href = link.href;
    }
  });
})();
