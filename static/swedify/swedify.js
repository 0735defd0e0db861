/* Swedify listener pages: shared helpers and the scan (home page and genres page).
 *
 * Runs under a strict Content-Security-Policy: scripts come from 'self' only, every handler
 * is attached with addEventListener, text is set with textContent (never innerHTML), and
 * elements are shown or hidden with the `hidden` attribute (never inline styles).
 * Progress comes from polling the job rows through the JSON API (docs/contract.md).
 * Words go through Django's JavaScript catalog (gettext, ngettext, interpolate, loaded before
 * this file by base.html); numbers through Intl.NumberFormat in the page's language.
 * The genres page's own script (genres.js) uses the helpers exported as window.Swedify.
 */
(function () {
  "use strict";

  var body = document.body;
  var POLL_MS = Number(body.getAttribute("data-poll-ms")) || 2000;
  // A paused scan waits for Spotify's quota: no need to ask every few seconds.
  var PAUSED_POLL_MS = Math.max(POLL_MS * 10, 10000);
  var MAX_BACKOFF_MS = 15000;

  // The catalog may be missing (an old cached page, a failed load): English then.
  var gettext =
    typeof window.gettext === "function"
      ? window.gettext
      : function (text) {
          return text;
        };
  var ngettext =
    typeof window.ngettext === "function"
      ? window.ngettext
      : function (singular, plural, count) {
          return count === 1 ? singular : plural;
        };
  function interpolate(format, values) {
    return String(format).replace(/%\(([a-zA-Z_]+)\)s/g, function (match, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : match;
    });
  }

  var STATUS_TITLES = {
    queued: gettext("Scan waiting to start"),
    running: gettext("Scanning your library"),
    paused: gettext("Scan paused"),
    succeeded: gettext("Scan finished"),
    failed: gettext("Scan failed")
  };

  // --- Small helpers -------------------------------------------------------------------------

  function $(selector, root) {
    return (root || document).querySelector(selector);
  }

  function $all(selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  }

  function show(element, visible) {
    if (element) {
      element.hidden = !visible;
    }
  }

  function setText(element, text) {
    if (element) {
      if (element.textContent !== (text || "")) {
        element.textContent = text || "";
      }
      element.hidden = !text;
    }
  }

  var numberFormat = null;
  function number(value) {
    if (!numberFormat) {
      try {
        numberFormat = new Intl.NumberFormat(document.documentElement.lang || undefined);
      } catch (error) {
        numberFormat = new Intl.NumberFormat();
      }
    }
    return numberFormat.format(Number(value || 0));
  }

  function cookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  function csrfToken() {
    return cookie("csrftoken") || body.getAttribute("data-csrf-token") || "";
  }

  function readJSON(element, name, fallback) {
    try {
      return JSON.parse(element.getAttribute(name) || "");
    } catch (error) {
      return fallback;
    }
  }

  // Calls the JSON API; resolves to {status, data} (data may be null), rejects on network errors.
  function api(method, url, payload) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    };
    if (payload !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRFToken"] = csrfToken();
      options.body = JSON.stringify(payload);
    }
    return fetch(url, options).then(function (response) {
      return response
        .json()
        .catch(function () {
          return null;
        })
        .then(function (data) {
          return { status: response.status, data: data };
        });
    });
  }

  // Replaces the element with `id` by the one of the same id in a fresh copy of `url` (a
  // page of this site, parsed as an inert document: its scripts never run). Resolves to
  // whether it did.
  function refreshFragment(url, id) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.ok ? response.text() : "";
      })
      .then(function (html) {
        var current = document.getElementById(id);
        if (!html || !current) {
          return false;
        }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(id);
        if (!fresh) {
          return false;
        }
        current.replaceWith(document.importNode(fresh, true));
        return true;
      })
      .catch(function () {
        return false;
      });
  }

  // The words for an API answer that is not a success.
  function problem(answer) {
    if (answer.status === 401) {
      return gettext("Your session has ended. Sign in again to continue.");
    }
    if (answer.status === 403) {
      return gettext(
        "This page is out of date (the security token changed). Reload the page and try again."
      );
    }
    if (answer.data && typeof answer.data.error === "string" && answer.data.error) {
      var text = answer.data.error.charAt(0).toUpperCase() + answer.data.error.slice(1);
      return /[.!?]$/.test(text) ? text : text + ".";
    }
    return interpolate(
      gettext("Swedify could not do that right now (error %(status)s). Try again in a moment."),
      { status: answer.status }
    );
  }

  function unreachable() {
    return gettext("Swedify could not be reached. Check your connection and try again.");
  }

  // Repeats `tick` until it returns false; `tick` returns a promise of the next delay (ms) or
  // false. Network errors back off up to MAX_BACKOFF_MS and report through `onOffline`.
  function poll(tick, onOffline) {
    var failures = 0;
    function again(delay) {
      window.setTimeout(run, delay);
    }
    function run() {
      tick().then(
        function (delay) {
          failures = 0;
          if (delay !== false) {
            again(delay);
          }
        },
        function () {
          failures += 1;
          if (onOffline) {
            onOffline(failures);
          }
          again(Math.min(POLL_MS * Math.pow(2, failures), MAX_BACKOFF_MS));
        }
      );
    }
    run();
  }

  function errorInWords(error) {
    if (!error) {
      return "";
    }
    if (typeof error !== "object") {
      return String(error);
    }
    var sentence = String(error.error || gettext("Something went wrong"));
    if (error.details) {
      sentence += " (" + error.details + ")";
    }
    // The step's words come with the JSON (stepLabel), so they are written in one place.
    var step = error.stepLabel;
    if (step) {
      sentence +=
        " " +
        interpolate(gettext("while %(step)s"), {
          step: step.charAt(0).toLowerCase() + step.slice(1)
        });
    }
    sentence += ".";
    var counts = [];
    if (typeof error.tracksFound === "number") {
      counts.push(
        interpolate(ngettext("%(n)s song found", "%(n)s songs found", error.tracksFound), {
          n: number(error.tracksFound)
        })
      );
    }
    if (typeof error.artistsToFetch === "number") {
      counts.push(
        interpolate(
          ngettext("%(n)s artist to look up", "%(n)s artists to look up", error.artistsToFetch),
          { n: number(error.artistsToFetch) }
        )
      );
    }
    if (counts.length) {
      sentence += " " + interpolate(gettext("By then: %(counts)s."), { counts: counts.join(", ") });
    }
    return sentence;
  }

  // --- Scan progress panel -------------------------------------------------------------------

  // The same words as genres.pages.eta_in_words.
  function etaInWords(seconds) {
    if (typeof seconds !== "number") {
      return "";
    }
    if (seconds < 60) {
      return gettext("Less than a minute left");
    }
    var minutes = Math.ceil(seconds / 60);
    if (minutes < 60) {
      return interpolate(
        ngettext("About %(n)s minute left", "About %(n)s minutes left", minutes),
        { n: minutes }
      );
    }
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    var hoursWords = interpolate(ngettext("%(n)s hour", "%(n)s hours", hours), { n: hours });
    if (!minutes) {
      return interpolate(gettext("About %(hours)s left"), { hours: hoursWords });
    }
    return interpolate(gettext("About %(hours)s %(minutes)s left"), {
      hours: hoursWords,
      minutes: interpolate(ngettext("%(n)s minute", "%(n)s minutes", minutes), { n: minutes })
    });
  }

  // The same words as genres.pages.scan_counts_in_words: [counts, note].
  function countsInWords(scan) {
    var total = scan.tracksTotal || 0;
    var found = scan.tracksFound || 0;
    var toFetch = scan.artistsToFetch || 0;
    var counts = [];
    if (found || total) {
      counts.push(
        total
          ? interpolate(
              ngettext("%(found)s of %(total)s song read", "%(found)s of %(total)s songs read", total),
              { found: number(found), total: number(total) }
            )
          : interpolate(ngettext("%(n)s song read", "%(n)s songs read", found), { n: number(found) })
      );
    }
    if (toFetch) {
      counts.push(
        interpolate(
          ngettext(
            "%(done)s of %(total)s artist looked up",
            "%(done)s of %(total)s artists looked up",
            toFetch
          ),
          { done: number(scan.artistsFetched), total: number(toFetch) }
        )
      );
    }
    var notes = [];
    if (scan.tracksSkipped) {
      notes.push(
        interpolate(
          ngettext(
            "%(n)s entry of your library is not counted: a local file, a song no longer " +
              "available on Spotify, or a song already counted from another source.",
            "%(n)s entries of your library are not counted: local files, songs no longer " +
              "available on Spotify, or songs already counted from another source.",
            scan.tracksSkipped
          ),
          { n: number(scan.tracksSkipped) }
        )
      );
    }
    if (toFetch) {
      notes.push(
        gettext(
          "Only artists whose genres Swedify does not know yet are looked up, so your " +
            "library may have more artists than this."
        )
      );
    }
    return [counts.join(" · "), notes.join(" ")];
  }

  function ScanPanel(element) {
    this.element = element;
    this.sources = readJSON(element, "data-sources", ["liked"]);
    this.pollId = 0;
    // The highest percentage shown for each scan: the bar never moves backwards.
    this.shown = {};
    var panel = this;
    var retry = $(".js-scan-retry", element);
    if (retry) {
      retry.addEventListener("click", function () {
        panel.start(panel.sources, true, null);
      });
    }
  }

  ScanPanel.prototype.render = function (scan) {
    var element = this.element;
    var active = scan.status === "queued" || scan.status === "running" || scan.status === "paused";
    var previous = element.getAttribute("data-scan-status");
    element.hidden = false;
    element.setAttribute("data-scan-id", scan.id || "");
    element.setAttribute("data-scan-status", scan.status || "");
    setText($(".js-scan-title", element), STATUS_TITLES[scan.status] || scan.status);
    // A queued scan has not started any step yet.
    var showStep = scan.status === "running" || scan.status === "paused";
    setText($(".js-scan-step", element), showStep ? scan.stepLabel || "" : "");
    var words = countsInWords(scan);
    setText($(".js-scan-counts", element), words[0]);
    setText($(".js-scan-note", element), words[1]);
    setText($(".js-scan-eta", element), scan.status === "running" ? etaInWords(scan.etaSeconds) : "");

    var bar = $(".scan-bar", element);
    if (active && typeof scan.percent === "number") {
      var percent = Math.max(this.shown[scan.id] || 0, Math.min(100, scan.percent));
      this.shown[scan.id] = percent;
      var progress = $(".js-scan-progress", element);
      progress.max = 100;
      progress.value = percent;
      progress.setAttribute("aria-valuetext", interpolate(gettext("%(percent)s %"), { percent: percent }));
      setText($(".js-scan-percent", element), interpolate(gettext("%(percent)s %"), { percent: percent }));
      show(bar, true);
    } else {
      show(bar, false);
    }

    var paused = $(".js-scan-paused", element);
    if (scan.status === "paused" && scan.resumeAt) {
      var resumeAt = new Date(scan.resumeAt);
      var minutes = Math.max(0, Math.round((resumeAt.getTime() - Date.now()) / 60000));
      var resume = $(".js-scan-resume", element);
      resume.setAttribute("datetime", scan.resumeAt);
      resume.textContent = resumeAt.toLocaleTimeString(document.documentElement.lang || [], {
        hour: "2-digit",
        minute: "2-digit"
      });
      $(".js-scan-resume-in", element).textContent =
        "(" +
        (minutes < 1
          ? gettext("in less than a minute")
          : interpolate(gettext("in about %(n)s min"), { n: minutes })) +
        ")";
      show(paused, true);
    } else {
      show(paused, false);
    }
    var failedOrPaused = scan.status === "failed" || scan.status === "paused";
    setText($(".js-scan-error", element), failedOrPaused ? errorInWords(scan.error) : "");
    show($(".js-scan-failed-actions", element), scan.status === "failed");
    show($(".js-scan-done-actions", element), scan.status === "succeeded");
    if (scan.status === "succeeded" && previous !== "succeeded") {
      this.finished();
    }
    body.setAttribute("data-scan-active", active ? "true" : "false");
  };

  // A scan just ended well: the home page's library card is swapped for a fresh one (the
  // new counts, one "See your genres" button), and the next scan from the form is a rescan.
  ScanPanel.prototype.finished = function () {
    show($(".js-library-unscanned"), false);
    var form = $("#scan-form");
    if (form) {
      form.setAttribute("data-refresh", "true");
    }
    if (this.element.getAttribute("data-swap-library-card") === "true") {
      refreshFragment("/library-card", "library-card");
    }
  };

  ScanPanel.prototype.offline = function () {
    setText(
      $(".js-scan-step", this.element),
      gettext("Lost contact with Swedify; trying again… (the scan goes on without this page)")
    );
  };

  ScanPanel.prototype.follow = function (scanId) {
    var panel = this;
    var pollId = ++this.pollId;
    poll(function () {
      if (pollId !== panel.pollId) {
        return Promise.resolve(false);
      }
      return api("GET", "/api/scans/" + encodeURIComponent(scanId)).then(function (answer) {
        if (answer.status !== 200 || !answer.data) {
          panel.message(problem(answer));
          return false;
        }
        panel.render(answer.data);
        if (answer.data.status === "paused") {
          return PAUSED_POLL_MS;
        }
        if (answer.data.status === "queued" || answer.data.status === "running") {
          return POLL_MS;
        }
        return false;
      });
    }, this.offline.bind(this));
  };

  ScanPanel.prototype.message = function (text) {
    var element = this.element;
    element.hidden = false;
    $(".js-scan-title", element).textContent = gettext("Scan");
    setText($(".js-scan-error", element), text);
  };

  // Starts (or joins) a scan; `report` shows a start error where the listener acted.
  ScanPanel.prototype.start = function (sources, refresh, report) {
    var panel = this;
    panel.sources = sources;
    return api("POST", "/api/scans", { sources: sources, refresh: refresh }).then(
      function (answer) {
        if ((answer.status === 200 || answer.status === 202) && answer.data) {
          panel.render(answer.data);
          panel.follow(answer.data.id);
          return true;
        }
        (report || panel.message.bind(panel))(problem(answer));
        return false;
      },
      function () {
        (report || panel.message.bind(panel))(unreachable());
        return false;
      }
    );
  };

  // Playlist links or ids, one per line or separated by commas/spaces -> "playlist:<id>".
  function playlistSources(text) {
    var sources = [];
    var bad = [];
    text.split(/[\s,]+/).forEach(function (item) {
      if (!item) {
        return;
      }
      var match =
        item.match(/^spotify:playlist:([A-Za-z0-9]+)$/) ||
        item.match(/^https?:\/\/open\.spotify\.com\/(?:[a-z-]+\/)?playlist\/([A-Za-z0-9]+)/) ||
        item.match(/^([A-Za-z0-9]{10,40})$/);
      if (match) {
        var source = "playlist:" + match[1];
        if (sources.indexOf(source) < 0) {
          sources.push(source);
        }
      } else {
        bad.push(item);
      }
    });
    return { sources: sources, bad: bad };
  }

  function formMessage(form, text) {
    setText($(".form-message", form), text);
  }

  function initScanForm(panel) {
    var form = $("#scan-form");
    if (!form) {
      return;
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var parsed = playlistSources(form.elements.playlists.value);
      if (parsed.bad.length) {
        formMessage(
          form,
          interpolate(gettext("These are not Spotify playlist links or ids: %(items)s."), {
            items: parsed.bad.join(", ")
          })
        );
        return;
      }
      var sources = (form.elements.liked.checked ? ["liked"] : []).concat(parsed.sources);
      if (!sources.length) {
        formMessage(form, gettext("Choose liked songs, a playlist, or both."));
        return;
      }
      formMessage(form, "");
      var button = $("button[type=submit]", form);
      button.disabled = true;
      panel
        .start(sources, form.getAttribute("data-refresh") === "true", formMessage.bind(null, form))
        .then(function () {
          button.disabled = false;
        });
    });
  }

  function initScans() {
    var element = $("#scan-status");
    if (!element) {
      return;
    }
    var panel = new ScanPanel(element);
    var status = element.getAttribute("data-scan-status");
    var scanId = element.getAttribute("data-scan-id");
    if (scanId && (status === "queued" || status === "running" || status === "paused")) {
      panel.follow(scanId);
    }
    initScanForm(panel);
    var refresh = $(".js-refresh");
    if (refresh) {
      refresh.addEventListener("click", function () {
        refresh.disabled = true;
        panel
          .start(panel.sources, true, setText.bind(null, $(".js-refresh-message")))
          .then(function () {
            refresh.disabled = false;
          });
      });
    }
  }

  window.Swedify = {
    $: $,
    $all: $all,
    show: show,
    setText: setText,
    number: number,
    readJSON: readJSON,
    api: api,
    poll: poll,
    problem: problem,
    unreachable: unreachable,
    errorInWords: errorInWords,
    formMessage: formMessage,
    refreshFragment: refreshFragment,
    gettext: gettext,
    ngettext: ngettext,
    interpolate: interpolate,
    POLL_MS: POLL_MS
  };

  initScans();
  // A page with its own script (genres.js) says when it is ready itself.
  if (!$("script[data-page-script]")) {
    body.setAttribute("data-ready", "true");
  }
})();
