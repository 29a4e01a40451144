// The shop's live updates: tell the socket which elements the page has (their ids), so the
// server sends only swaps whose target is there (htmx logs an error for any other). Sent when
// the socket opens (and reopens) and whenever a swap changes the set.
(function () {
  "use strict";
  const SHOP_SOCKET = "/ws/shop/"; // base.html's <main ws-connect>; other sockets speak otherwise
  let socket = null;
  let declared = null;

  function shown() {
    return Array.from(document.querySelectorAll("[id]"), function (element) {
      return element.id;
    }).sort();
  }

  function declare(force) {
    if (!socket) return;
    const ids = shown();
    const key = ids.join(" ");
    if (!force && key === declared) return;
    declared = key;
    socket.send(JSON.stringify({ shows: ids }), document.body);
  }

  document.addEventListener("htmx:wsOpen", function (event) {
    if (event.target.getAttribute("ws-connect") !== SHOP_SOCKET) return;
    socket = event.detail.socketWrapper;
    declare(true); // a new connection knows nothing yet
  });
  document.addEventListener("htmx:afterSettle", function () {
    declare(false);
  });
})();
