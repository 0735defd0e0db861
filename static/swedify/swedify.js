/* Swedify listener pages: scans, the genres browser and playlist creation.
 *
 * Runs under a strict Content-Security-Policy: this file is the only script, it attaches
 * every handler with addEventListener, sets text with textContent (never innerHTML) and
 * shows or hides elements with the `hidden` attribute (never inline styles).
 * Progress comes from polling the job rows through the JSON API (docs/contract.md).
 */
(function () {
  "use strict";

  var body = document.body;
  var POLL_MS = Number(body.getAttribute("data-poll-ms")) || 1000;
  // A paused scan waits for Spotify's quota: no need to ask every second.
  var PAUSED_POLL_MS = Math.max(POLL_MS * 10, 10000);
  var MAX_BACKOFF_MS = 15000;

  var STATUS_TITLES = {
    queued: "Scan waiting to start",
    running: "Scanning your library",
    paused: "Scan paused",
    succeeded: "Scan finished",
    failed: "Scan failed"
  };
  var RESULT_WORDS = {
    created: "Created",
    updated: "Updated",
    skipped: "Skipped",
    failed: "Failed",
    pending: "Waiting",
    running: "Working"
  };
  var JOB_TITLES = {
    queued: "Playlists waiting to start",
    running: "Creating playlists",
    succeeded: "Playlists ready",
    partial: "Some playlists could not be finished",
    failed: "Playlists could not be created"
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
      element.textContent = text || "";
      element.hidden = !text;
    }
  }

  function number(value) {
    return Number(value || 0).toLocaleString("en-US");
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

  // The words for an API answer that is not a success.
  function problem(answer) {
    if (answer.status === 401) {
      return "Your session has ended. Sign in again to continue.";
    }
    if (answer.status === 403) {
      return (
        "This page is out of date (the security token changed). " +
        "Reload the page and try again."
      );
    }
    if (answer.data && typeof answer.data.error === "string" && answer.data.error) {
      var text = answer.data.error.charAt(0).toUpperCase() + answer.data.error.slice(1);
      return /[.!?]$/.test(text) ? text : text + ".";
    }
    return (
      "Swedify could not do that right now (error " + answer.status + "). " +
      "Try again in a moment."
    );
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

  // --- Scan progress panel -------------------------------------------------------------------

  function errorInWords(error) {
    if (!error) {
      return "";
    }
    if (typeof error !== "object") {
      return String(error);
    }
    var sentence = String(error.error || "Something went wrong");
    if (error.details) {
      sentence += " (" + error.details + ")";
    }
    // The step's words come with the JSON (stepLabel), so they are written in one place.
    var step = error.stepLabel;
    if (step) {
      sentence += " while " + step.charAt(0).toLowerCase() + step.slice(1);
    }
    sentence += ".";
    var counts = [];
    if (typeof error.tracksFound === "number") {
      counts.push(number(error.tracksFound) + " tracks found");
    }
    if (typeof error.artistsToFetch === "number") {
      counts.push(number(error.artistsToFetch) + " artists to look up");
    }
    if (counts.length) {
      sentence += " By then: " + counts.join(", ") + ".";
    }
    return sentence;
  }

  function ScanPanel(element) {
    this.element = element;
    this.sources = readJSON(element, "data-sources", ["liked"]);
    this.pollId = 0;
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
    element.hidden = false;
    element.setAttribute("data-scan-id", scan.id || "");
    element.setAttribute("data-scan-status", scan.status || "");
    $(".js-scan-title", element).textContent = STATUS_TITLES[scan.status] || scan.status;
    setText($(".js-scan-step", element), scan.status === "failed" ? "" : scan.stepLabel || "");

    var counts = [];
    if (scan.tracksFound || scan.tracksTotal) {
      counts.push(
        number(scan.tracksFound) +
          (scan.tracksTotal ? " of " + number(scan.tracksTotal) : "") +
          " tracks"
      );
    }
    if (scan.artistsToFetch) {
      counts.push(number(scan.artistsFetched) + " of " + number(scan.artistsToFetch) + " artists");
    }
    setText($(".js-scan-counts", element), counts.join(" · "));

    var progress = $(".js-scan-progress", element);
    var value = 0;
    var max = 0;
    if (active && scan.step === "fetching_artists" && scan.artistsToFetch) {
      value = scan.artistsFetched;
      max = scan.artistsToFetch;
    } else if (active && scan.tracksTotal) {
      value = scan.tracksFound;
      max = scan.tracksTotal;
    }
    if (max) {
      progress.max = max;
      progress.value = Math.min(value, max);
    }
    show(progress, Boolean(max));

    var paused = $(".js-scan-paused", element);
    if (scan.status === "paused" && scan.resumeAt) {
      var resumeAt = new Date(scan.resumeAt);
      var minutes = Math.max(0, Math.round((resumeAt.getTime() - Date.now()) / 60000));
      var resume = $(".js-scan-resume", element);
      resume.setAttribute("datetime", scan.resumeAt);
      resume.textContent = resumeAt.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      $(".js-scan-resume-in", element).textContent =
        "(" + (minutes < 1 ? "in less than a minute" : "in about " + minutes + " min") + ")";
      show(paused, true);
    } else {
      show(paused, false);
    }
    var failedOrPaused = scan.status === "failed" || scan.status === "paused";
    setText($(".js-scan-error", element), failedOrPaused ? errorInWords(scan.error) : "");
    show($(".js-scan-failed-actions", element), scan.status === "failed");
    show($(".js-scan-done-actions", element), scan.status === "succeeded");
    if (scan.status === "succeeded") {
      // The library's first scan just finished: "not scanned yet" is no longer true.
      show($(".js-library-unscanned"), false);
    }
    body.setAttribute("data-scan-active", active ? "true" : "false");
  };

  ScanPanel.prototype.offline = function () {
    setText(
      $(".js-scan-step", this.element),
      "Lost contact with Swedify; trying again… (the scan goes on without this page)"
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
    $(".js-scan-title", element).textContent = "Scan";
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
        (report || panel.message.bind(panel))(
          "Swedify could not be reached. Check your connection and try again."
        );
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
          "These are not Spotify playlist links or ids: " + parsed.bad.join(", ") + "."
        );
        return;
      }
      var sources = (form.elements.liked.checked ? ["liked"] : []).concat(parsed.sources);
      if (!sources.length) {
        formMessage(form, "Choose liked songs, a playlist, or both.");
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

  // --- Genres browser ------------------------------------------------------------------------

  function GenreBrowser(element) {
    this.element = element;
    this.list = $("#genre-list", element);
    this.familiesBox = $("#genre-families", element);
    this.rows = $all(".genre-row", this.list);
    this.rows.forEach(function (row) {
      row.searchKey = $(".genre-name", row).textContent.toLowerCase();
      row.count = Number(row.getAttribute("data-count")) || 0;
    });
    this.families = readJSON(element, "data-families", []);
    this.sections = null;
    this.search = $("#genre-search", element);
    this.minimum = $("#genre-min", element);
    this.group = $("#genre-group", element);
    var browser = this;
    this.search.addEventListener("input", this.filter.bind(this));
    this.minimum.addEventListener("input", this.filter.bind(this));
    this.group.addEventListener("change", function () {
      browser.regroup(browser.group.checked);
    });
  }

  GenreBrowser.prototype.filter = function () {
    var query = this.search.value.trim().toLowerCase();
    var minimum = Math.max(1, Math.floor(Number(this.minimum.value) || 1));
    var visible = 0;
    this.rows.forEach(function (row) {
      var match = row.count >= minimum && (!query || row.searchKey.indexOf(query) >= 0);
      if (row.hidden === match) {
        row.hidden = !match;
      }
      if (match) {
        visible += 1;
      }
    });
    if (this.sections) {
      this.sections.forEach(function (section) {
        var shown = section.rows.some(function (row) {
          return !row.hidden;
        });
        section.element.hidden = !shown;
      });
    }
    var total = this.rows.length;
    setText(
      $(".js-visible-count", this.element),
      visible === total
        ? number(total) + " genres, most songs first."
        : "Showing " + number(visible) + " of " + number(total) + " genres."
    );
    show($(".js-no-match", this.element), total > 0 && visible === 0);
  };

  GenreBrowser.prototype.buildSections = function () {
    var box = this.familiesBox;
    var byFamily = {};
    this.sections = this.families.map(function (pair) {
      var section = document.createElement("section");
      section.className = "family";
      section.setAttribute("data-family", pair[0]);
      var heading = document.createElement("h3");
      var title = document.createElement("span");
      title.className = "family-name";
      title.textContent = pair[1];
      var summary = document.createElement("span");
      summary.className = "family-summary hint";
      heading.appendChild(title);
      heading.appendChild(document.createTextNode(" "));
      heading.appendChild(summary);
      var list = document.createElement("ol");
      list.className = "genre-list";
      section.appendChild(heading);
      section.appendChild(list);
      box.appendChild(section);
      var entry = { element: section, list: list, summary: summary, rows: [] };
      byFamily[pair[0]] = entry;
      return entry;
    });
    var other = byFamily.other;
    this.rows.forEach(function (row) {
      var entry = byFamily[row.getAttribute("data-family")] || other;
      if (entry) {
        entry.rows.push(row);
      }
    });
    this.sections.forEach(function (entry) {
      entry.summary.textContent =
        "(" + entry.rows.length + (entry.rows.length === 1 ? " genre)" : " genres)");
    });
  };

  // Moves the same row elements between the flat list and the family sections, so ticks and
  // filters survive switching views.
  GenreBrowser.prototype.regroup = function (byFamily) {
    var list = this.list;
    if (byFamily) {
      if (!this.sections) {
        this.buildSections();
      }
      this.sections.forEach(function (entry) {
        entry.rows.forEach(function (row) {
          entry.list.appendChild(row);
        });
      });
    } else {
      this.rows.forEach(function (row) {
        list.appendChild(row);
      });
    }
    show(this.list, !byFamily);
    show(this.familiesBox, byFamily);
    this.filter();
  };

  // --- Selection and playlist creation -------------------------------------------------------

  function Playlists(browserElement) {
    this.form = $("#playlist-form");
    this.jobBox = $("#playlist-job");
    this.max = Number(browserElement.getAttribute("data-max")) || 50;
    this.boxes = $all(".js-genre", browserElement);
    this.pollId = 0;
    var self = this;
    browserElement.addEventListener("change", function (event) {
      if (event.target.classList && event.target.classList.contains("js-genre")) {
        self.selectionChanged();
      }
    });
    $(".js-clear-selection", this.form).addEventListener("click", function () {
      self.boxes.forEach(function (box) {
        box.checked = false;
      });
      self.selectionChanged();
    });
    this.form.addEventListener("submit", function (event) {
      event.preventDefault();
      self.submit();
    });
    var jobId = this.jobBox.getAttribute("data-job-id");
    if (jobId) {
      this.follow(jobId);
    }
    this.selectionChanged();
  }

  Playlists.prototype.selected = function () {
    return this.boxes
      .filter(function (box) {
        return box.checked;
      })
      .map(function (box) {
        return box.value;
      });
  };

  Playlists.prototype.selectionChanged = function () {
    var names = this.selected();
    var full = names.length >= this.max;
    this.boxes.forEach(function (box) {
      if (!box.checked && !box.hasAttribute("data-always-disabled")) {
        box.disabled = full;
      }
    });
    var count = $(".js-selected-count", this.form);
    if (!names.length) {
      count.textContent =
        "Tick the genres you want as playlists (up to " + this.max + " at a time).";
    } else if (full) {
      count.textContent =
        names.length + " of " + this.max + " genres selected: that is the most at one time.";
    } else {
      count.textContent =
        names.length + (names.length === 1 ? " genre" : " genres") +
        " selected (up to " + this.max + ").";
    }
    var list = $(".js-selected-list", this.form);
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    names.forEach(function (name) {
      var item = document.createElement("li");
      item.textContent = name;
      list.appendChild(item);
    });
    show($(".js-clear-selection", this.form), names.length > 0);
    $(".js-create", this.form).disabled = names.length === 0;
  };

  Playlists.prototype.submit = function () {
    var form = this.form;
    var genres = this.selected();
    var pattern = form.elements.namePattern.value.trim();
    if (!genres.length) {
      formMessage(form, "Tick at least one genre first.");
      return;
    }
    if (genres.length > this.max) {
      formMessage(form, "Choose at most " + this.max + " genres at a time.");
      return;
    }
    if (pattern.indexOf("{genre}") < 0) {
      formMessage(form, "The playlist name must contain {genre}, which becomes each genre's name.");
      return;
    }
    formMessage(form, "");
    var payload = {
      genres: genres,
      namePattern: pattern,
      skipDuplicates: form.elements.skipDuplicates.checked
    };
    var description = form.elements.description.value.trim();
    if (description) {
      payload.description = description;
    }
    var button = $(".js-create", form);
    button.disabled = true;
    var self = this;
    api("POST", "/api/playlists", payload).then(
      function (answer) {
        button.disabled = false;
        if ((answer.status === 200 || answer.status === 202) && answer.data) {
          self.render(answer.data);
          self.follow(answer.data.id);
        } else {
          formMessage(form, problem(answer));
        }
      },
      function () {
        button.disabled = false;
        formMessage(form, "Swedify could not be reached. Check your connection and try again.");
      }
    );
  };

  Playlists.prototype.follow = function (jobId) {
    var self = this;
    var pollId = ++this.pollId;
    poll(
      function () {
        if (pollId !== self.pollId) {
          return Promise.resolve(false);
        }
        var url = "/api/playlist-jobs/" + encodeURIComponent(jobId);
        return api("GET", url).then(function (answer) {
          if (answer.status !== 200 || !answer.data) {
            setText($(".js-job-summary", self.jobBox), problem(answer));
            return false;
          }
          self.render(answer.data);
          var running = answer.data.status === "queued" || answer.data.status === "running";
          return running ? POLL_MS : false;
        });
      },
      function () {
        setText($(".js-job-summary", self.jobBox), "Lost contact with Swedify; trying again…");
      }
    );
  };

  function safeSpotifyUrl(url) {
    return typeof url === "string" && /^https:\/\/open\.spotify\.com\//.test(url) ? url : "";
  }

  Playlists.prototype.render = function (job) {
    var box = this.jobBox;
    box.hidden = false;
    box.setAttribute("data-job-id", job.id || "");
    box.setAttribute("data-job-status", job.status || "");
    $(".js-job-title", box).textContent = JOB_TITLES[job.status] || job.status;
    var results = job.results || [];
    var byGenre = {};
    results.forEach(function (entry) {
      byGenre[entry.genre] = entry;
    });
    var genres = job.genres && job.genres.length ? job.genres : results.map(function (entry) {
      return entry.genre;
    });
    var done = results.filter(function (entry) {
      return entry.status === "created" || entry.status === "updated" ||
        entry.status === "skipped" || entry.status === "failed";
    }).length;
    var summary = done + " of " + genres.length + " genres done.";
    if (job.error) {
      summary += " " + errorInWords(job.error);
    }
    setText($(".js-job-summary", box), summary);

    var tbody = $(".js-job-results", box);
    while (tbody.firstChild) {
      tbody.removeChild(tbody.firstChild);
    }
    genres.forEach(function (genre) {
      var entry = byGenre[genre] || { genre: genre, status: "pending" };
      var row = document.createElement("tr");
      row.setAttribute("data-status", entry.status || "");
      var name = document.createElement("td");
      var url = safeSpotifyUrl(entry.url);
      if (url) {
        var link = document.createElement("a");
        link.href = url;
        link.rel = "noopener noreferrer";
        link.target = "_blank";
        link.textContent = genre;
        name.appendChild(link);
      } else {
        name.textContent = genre;
      }
      var status = document.createElement("td");
      var words = RESULT_WORDS[entry.status] || entry.status || "";
      var reason = entry.error || entry.reason;
      status.textContent = reason ? words + ": " + reason : words;
      var tracks = document.createElement("td");
      if (typeof entry.tracksTotal === "number") {
        tracks.textContent = number(entry.tracksAdded) + " added of " + number(entry.tracksTotal);
      }
      row.appendChild(name);
      row.appendChild(status);
      row.appendChild(tracks);
      tbody.appendChild(row);
    });
  };

  function initGenres() {
    var element = $("#genre-browser");
    if (!element) {
      return;
    }
    $all(".js-genre[disabled]", element).forEach(function (box) {
      box.setAttribute("data-always-disabled", "");
    });
    new GenreBrowser(element);
    if ($("#playlist-form")) {
      new Playlists(element);
    }
  }

  initScans();
  initGenres();
  body.setAttribute("data-ready", "true");
})();
