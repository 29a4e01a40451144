// Live feed glue for the htmx ws extension: say where we left off and which rows we show (the
// server sends a run's badge only while its row is here), pause/resume, keep the table to a
// bounded number of rows.
(function () {
  "use strict";
  const MAX_ROWS = 500;
  let socket = null;
  let paused = false;

  function rowPositions() {
    return Array.from(document.querySelectorAll("#feed-rows > .feed-row[data-position]"), function (row) {
      return Number(row.dataset.position);
    });
  }

  function filters() {
    const form = document.getElementById("feed-filters");
    return form ? Object.fromEntries(new FormData(form)) : {};
  }

  document.addEventListener("htmx:wsOpen", function (event) {
    socket = event.detail.socketWrapper;
    const rows = rowPositions();
    const since = rows.length ? Math.max.apply(null, rows) : null;
    const hello = Object.assign(filters(), { action: "hello", since: since, rows: rows, keep: MAX_ROWS });
    socket.sendImmediately(JSON.stringify(hello), event.target);
    if (paused) socket.sendImmediately(JSON.stringify({ action: "pause" }), event.target);
  });

  document.addEventListener("htmx:wsClose", function () {
    const status = document.getElementById("feed-status");
    if (status) { status.textContent = "Reconnecting…"; status.classList.remove("is-live"); }
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    const rows = document.querySelectorAll("#feed-rows > .feed-row");
    for (let i = MAX_ROWS; i < rows.length; i++) rows[i].remove();
  });

  document.addEventListener("change", function (event) {
    const form = event.target.closest("#feed-filters");
    if (form) form.submit(); // filters apply on the server: the page and the socket both use them
  });

  document.addEventListener("click", function (event) {
    const button = event.target.closest("#feed-pause");
    if (!button || !socket) return;
    paused = !paused;
    socket.send(JSON.stringify({ action: paused ? "pause" : "resume" }), button);
    button.textContent = paused ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", String(paused));
    const status = document.getElementById("feed-status");
    if (status) status.textContent = paused ? "Paused" : "Live";
  });
})();
