// Live parts of a dashboard page. The server renders every fragment; this only swaps them in.
// Server-Sent Events first; where they are missing or keep failing, the same URL is polled.
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-live");
  var status = document.getElementById("live-status");
  if (!url) { return; }
  var POLL_MS = 2000;
  var FAILURES_BEFORE_POLLING = 3;

  function show(text, on) {
    if (!status) { return; }
    status.textContent = text;
    status.className = "live " + (on ? "on" : "off");
    status.setAttribute("data-mode", text);
  }

  function apply(update) {
    var parts = update.html || {};
    Object.keys(parts).forEach(function (id) {
      var element = document.getElementById(id);
      if (element) { element.innerHTML = parts[id]; }
    });
    body.setAttribute("data-updated", String(update.stamp || Date.now()));
  }

  function poll() {
    var sep = url.indexOf("?") >= 0 ? "&" : "?";
    var request = new XMLHttpRequest();
    request.open("GET", url + sep + "poll=1");
    request.onload = function () {
      if (request.status === 200) { apply(JSON.parse(request.responseText)); show("live (polling)", true); }
      else { show("disconnected", false); }
      window.setTimeout(poll, POLL_MS);
    };
    request.onerror = function () { show("disconnected", false); window.setTimeout(poll, POLL_MS); };
    request.send();
  }

  if (!window.EventSource) { poll(); return; }
  var failures = 0;
  var source = new EventSource(url);
  source.addEventListener("update", function (event) {
    failures = 0;
    apply(JSON.parse(event.data));
    show("live", true);
  });
  source.onerror = function () {
    failures += 1;
    show("reconnecting", false);
    if (failures >= FAILURES_BEFORE_POLLING) { source.close(); poll(); }
  };
}());
