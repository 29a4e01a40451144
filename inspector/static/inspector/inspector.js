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

// A live swap (over the websocket) of a part of the page that an operator's request started
// from, say the run list whose Replay button was just pressed, would detach the form the
// answer belongs to, and htmx would then look for the answer's targets in that detached copy
// and lose them (the notice, with an htmx:oobErrorNoTarget). So such a swap waits for the
// answer, and is applied after it only if it was drawn later than what the answer put there.
(function () {
  "use strict";
  const held = {};
  const drawnAt = function (element) { return parseFloat(element.dataset.rendered || "0"); };
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    const target = event.detail.target;
    if (!target || !target.id || !target.querySelector(".htmx-request")) return;
    const replacement = event.detail.fragment.firstElementChild;
    if (!replacement) return;
    event.detail.shouldSwap = false;
    held[target.id] = replacement.outerHTML;
  });
  document.addEventListener("htmx:afterRequest", function () {
    setTimeout(function () {  // after the answer's own swap
      Object.keys(held).forEach(function (id) {
        const current = document.getElementById(id);
        const html = held[id];
        if (!current || current.querySelector(".htmx-request")) return;
        delete held[id];
        const later = new DOMParser().parseFromString(html, "text/html").body.firstElementChild;
        if (later && drawnAt(later) > drawnAt(current)) {
          htmx.swap(current, html, { swapStyle: "outerHTML" });
        }
      });
    }, 0);
  });
})();
