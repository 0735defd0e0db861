/* The home page's auto-sync panel (templates/genres/_sync.html): saves the settings with
   PUT /api/sync, starts "Sync now" with POST /api/sync/run and, while a sync runs, polls
   GET /api/sync until it ends, then reloads the page to show what changed. A same-origin file:
   the page's strict CSP allows no inline script. */
(function () {
  "use strict";
  var panel = document.getElementById("sync");
  if (!panel) {
    return;
  }
  var form = panel.querySelector(".js-sync-form");
  var message = panel.querySelector(".js-sync-message");
  var runButton = panel.querySelector(".js-sync-now");
  var t = window.gettext || function (text) { return text; };
  var POLL_MS = 2000;

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return (match && decodeURIComponent(match[1])) || document.body.getAttribute("data-csrf-token") || "";
  }

  function say(text) {
    message.textContent = text;
    message.hidden = !text;
  }

  function call(method, url, payload) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    };
    if (method !== "GET") {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRFToken"] = csrfToken();
      options.body = JSON.stringify(payload || {});
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          throw new Error(data.error || t("Something went wrong; try again."));
        }
        return data;
      });
    });
  }

  function waitForEnd() {
    call("GET", panel.getAttribute("data-sync-url")).then(function (sync) {
      if (sync.running) {
        window.setTimeout(waitForEnd, POLL_MS);
      } else {
        window.location.reload();
      }
    }).catch(function (error) { say(error.message); });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var hours = parseInt(form.elements.intervalHours.value, 10);
    call("PUT", panel.getAttribute("data-sync-url"), {
      enabled: form.elements.enabled.checked,
      intervalHours: hours,
      removeUnliked: form.elements.removeUnliked.checked
    }).then(function () {
      window.location.reload();
    }).catch(function (error) { say(error.message); });
  });

  runButton.addEventListener("click", function () {
    runButton.disabled = true;
    say(t("Syncing…"));
    call("POST", panel.getAttribute("data-sync-run-url")).then(waitForEnd).catch(function (error) {
      runButton.disabled = false;
      say(error.message);
    });
  });

  if (panel.querySelector(".js-sync-running")) {
    window.setTimeout(waitForEnd, POLL_MS);
  }
})();
