/* SpreadPilot status page: reload every data-refresh seconds, but never while the
   operator is typing (a PIN or reason would be wiped); then try again shortly. */
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (!(seconds > 0)) {
    return;
  }
  var RETRY_MS = 5000;

  function typing() {
    var active = document.activeElement;
    if (active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName) && active.type !== "hidden") {
      return true;
    }
    var fields = document.querySelectorAll('input[name="pin"], input[name="reason"]');
    for (var i = 0; i < fields.length; i += 1) {
      if (fields[i].type !== "hidden" && fields[i].value) {
        return true;
      }
    }
    return false;
  }

  function tick() {
    if (typing()) {
      window.setTimeout(tick, RETRY_MS);
      return;
    }
    window.location.reload();
  }

  window.setTimeout(tick, seconds * 1000);
})();
