// Keeps a pipeline run's admin page current while the run is queued, running or paused.
// Every few seconds it asks for the same page again (same origin, the operator's session)
// and puts the new content in place, keeping open the stage logs the operator opened. It
// stops once the page it received says the run has ended. Loaded as a file: the admin's
// Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  var marker = document.getElementById("run-live");
  if (!marker || !window.fetch || !window.DOMParser) {
    return;
  }
  var interval = parseInt(marker.getAttribute("data-refresh-ms"), 10) || 3000;

  function openedLogs(root) {
    return Array.prototype.map.call(root.querySelectorAll("details"), function (item) {
      return item.open;
    });
  }

  function say(text) {
    var state = document.getElementById("run-live-state");
    if (state) {
      state.textContent = text;
    }
  }

  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("content-main");
        var current = document.getElementById("content-main");
        if (!fresh || !current) {
          throw new Error("not a run page (signed out?)");
        }
        var opened = openedLogs(current);
        var nodes = Array.prototype.map.call(fresh.childNodes, function (node) {
          return document.importNode(node, true);
        });
        current.replaceChildren.apply(current, nodes);
        var logs = current.querySelectorAll("details");
        opened.forEach(function (wasOpen, index) {
          if (wasOpen && logs[index]) {
            logs[index].open = true;
          }
        });
        if (document.getElementById("run-live")) {
          say(" (updated " + new Date().toLocaleTimeString() + ")");
          window.setTimeout(refresh, interval);
        }
      })
      .catch(function (error) {
        say(" (the last update failed: " + error.message + "; trying again)");
        window.setTimeout(refresh, interval * 2);
      });
  }

  window.setTimeout(refresh, interval);
})();
