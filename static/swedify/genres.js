/* The genres page: browsing (search, smallest genre, families, paging), selection, the bar
 * that stays in view, and playlist creation with its live results.
 *
 * Uses the helpers of swedify.js (window.Swedify), which runs first (both are deferred, in
 * document order). Same rules as there: strict CSP, textContent only, `hidden` only.
 */
(function () {
  "use strict";

  var S = window.Swedify;
  var $ = S.$;
  var $all = S.$all;
  var gettext = S.gettext;
  var ngettext = S.ngettext;
  var interpolate = S.interpolate;
  var number = S.number;
  var setText = S.setText;
  var show = S.show;

  var RESULT_WORDS = {
    created: gettext("Created"),
    updated: gettext("Updated"),
    skipped: gettext("Skipped"),
    failed: gettext("Failed"),
    pending: gettext("Waiting"),
    running: gettext("Working")
  };
  var JOB_TITLES = {
    queued: gettext("Playlists waiting to start"),
    running: gettext("Creating playlists"),
    succeeded: gettext("Playlists ready"),
    partial: gettext("Some playlists could not be finished"),
    failed: gettext("Playlists could not be created")
  };
  var FINISHED = ["created", "updated", "skipped", "failed"];

  // --- Genres browser ------------------------------------------------------------------------

  function GenreBrowser(element) {
    this.element = element;
    this.list = $("#genre-list", element);
    this.familiesBox = $("#genre-families", element);
    this.more = $("#genre-more", element);
    this.unclassified = $("#unclassified-row", element);
    this.rows = $all(".genre-row", this.list);
    this.rows.forEach(function (row) {
      row.searchKey = $(".genre-name", row).textContent.toLowerCase();
      row.count = Number(row.getAttribute("data-count")) || 0;
    });
    this.families = S.readJSON(element, "data-families", []);
    this.pageRows = Number(element.getAttribute("data-page-rows")) || 100;
    this.limit = this.pageRows;
    this.sections = null;
    this.search = $("#genre-search", element);
    this.minimum = $("#genre-min", element);
    this.group = $("#genre-group", element);
    var browser = this;
    function refilter() {
      browser.limit = browser.pageRows;
      browser.filter();
    }
    this.search.addEventListener("input", refilter);
    this.minimum.addEventListener("input", refilter);
    this.group.addEventListener("change", function () {
      browser.regroup(browser.group.checked);
    });
    this.more.addEventListener("click", function () {
      browser.limit += browser.pageRows;
      browser.filter();
    });
    if (this.group.checked) {
      this.regroup(true);
    } else {
      this.filter();
    }
  }

  GenreBrowser.prototype.grouped = function () {
    return Boolean(this.sections) && !this.familiesBox.hidden;
  };

  GenreBrowser.prototype.filter = function () {
    var query = this.search.value.trim().toLowerCase();
    var minimum = Math.max(1, Math.floor(Number(this.minimum.value) || 1));
    var grouped = this.grouped();
    var limit = this.limit;
    var matching = 0;
    this.rows.forEach(function (row) {
      var match = row.count >= minimum && (!query || row.searchKey.indexOf(query) >= 0);
      if (match) {
        matching += 1;
      }
      // The flat list shows a page at a time; families show all of theirs when opened.
      var visible = match && (grouped || matching <= limit);
      row.genreMatch = match;
      if (row.hidden === visible) {
        row.hidden = !visible;
      }
    });
    if (this.sections) {
      this.sections.forEach(function (section) {
        var count = section.rows.filter(function (row) {
          return row.genreMatch;
        }).length;
        section.element.hidden = count === 0;
        section.summary.textContent =
          "(" + interpolate(ngettext("%(n)s genre", "%(n)s genres", count), { n: number(count) }) + ")";
        // A search opens the families it found something in.
        if (query && count && !section.details.open) {
          section.details.open = true;
        }
      });
    }
    var hiddenByPage = grouped ? 0 : Math.max(0, matching - limit);
    if (hiddenByPage) {
      this.more.textContent = interpolate(
        ngettext("Show %(n)s more genre", "Show %(n)s more genres", Math.min(hiddenByPage, this.pageRows)),
        { n: number(Math.min(hiddenByPage, this.pageRows)) }
      );
    }
    show(this.more, hiddenByPage > 0);
    var total = this.rows.length;
    setText(
      $(".js-visible-count", this.element),
      matching === total
        ? interpolate(ngettext("%(n)s genre, most songs first.", "%(n)s genres, most songs first.", total), {
            n: number(total)
          })
        : interpolate(gettext("Showing %(shown)s of %(total)s genres."), {
            shown: number(matching),
            total: number(total)
          })
    );
    show($(".js-no-match", this.element), total > 0 && matching === 0);
    // "Unclassified" is not a search result: it stays only while nothing is searched for or
    // the search matches its name.
    if (this.unclassified) {
      var name = $(".genre-name", this.unclassified).textContent.toLowerCase();
      show(this.unclassified, !query || name.indexOf(query) >= 0);
    }
  };

  GenreBrowser.prototype.buildSections = function () {
    var box = this.familiesBox;
    var byFamily = {};
    this.sections = this.families.map(function (pair) {
      var section = document.createElement("section");
      section.className = "family";
      section.setAttribute("data-family", pair[0]);
      var details = document.createElement("details");
      var summaryLine = document.createElement("summary");
      var heading = document.createElement("h3");
      var title = document.createElement("span");
      title.className = "family-name";
      title.textContent = pair[1];
      var summary = document.createElement("span");
      summary.className = "family-summary hint";
      heading.appendChild(title);
      heading.appendChild(document.createTextNode(" "));
      heading.appendChild(summary);
      summaryLine.appendChild(heading);
      var list = document.createElement("ol");
      list.className = "genre-list";
      details.appendChild(summaryLine);
      details.appendChild(list);
      section.appendChild(details);
      box.appendChild(section);
      var entry = { element: section, details: details, list: list, summary: summary, rows: [] };
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
  };

  // Moves the same row elements between the flat list and the family sections, so ticks and
  // filters survive switching views. Families start collapsed; a search opens those it hits.
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
    this.limit = this.pageRows;
    this.filter();
  };

  // The genre rows a listener can see right now: matching, on the shown page, and (grouped)
  // in an open family.
  GenreBrowser.prototype.shownBoxes = function () {
    var grouped = this.grouped();
    var boxes = [];
    this.rows.forEach(function (row) {
      if (row.hidden) {
        return;
      }
      if (grouped) {
        var details = row.closest("details");
        if (details && !details.open) {
          return;
        }
      }
      boxes.push($(".js-genre", row));
    });
    if (this.unclassified && !this.unclassified.hidden) {
      boxes.push($(".js-genre", this.unclassified));
    }
    return boxes;
  };

  // --- Selection and playlist creation -------------------------------------------------------

  function Playlists(browserElement, browser) {
    this.form = $("#playlist-form");
    this.jobBox = $("#playlist-job");
    this.bar = $("#selection-bar");
    this.browser = browser;
    this.max = Number(browserElement.getAttribute("data-max")) || 50;
    this.boxes = $all(".js-genre", browserElement);
    this.pollId = 0;
    this.jobActive = !$("#create-busy").hidden;
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
    $("#select-shown").addEventListener("click", function () {
      self.selectShown();
    });
    this.form.addEventListener("submit", function (event) {
      event.preventDefault();
      self.submit();
    });
    // The bar's links move the keyboard focus too, not only the view.
    $all("a[href^='#']", this.bar).forEach(function (link) {
      link.addEventListener("click", function () {
        var target = document.getElementById(link.getAttribute("href").slice(1));
        if (target) {
          window.setTimeout(function () {
            target.focus({ preventScroll: true });
          }, 0);
        }
      });
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

  Playlists.prototype.selectShown = function () {
    var room = this.max - this.selected().length;
    var added = 0;
    var left = 0;
    this.browser.shownBoxes().forEach(function (box) {
      if (box.checked || box.hasAttribute("data-always-disabled")) {
        return;
      }
      if (added < room) {
        box.checked = true;
        added += 1;
      } else {
        left += 1;
      }
    });
    this.selectionChanged();
    if (left) {
      S.formMessage(
        this.form,
        interpolate(
          gettext("Only %(max)s genres fit in one request: %(left)s shown genres were not selected."),
          { max: this.max, left: number(left) }
        )
      );
    }
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
      count.textContent = interpolate(
        gettext("Tick the genres you want as playlists (up to %(max)s at a time)."),
        { max: this.max }
      );
    } else if (full) {
      count.textContent = interpolate(
        gettext("%(n)s of %(max)s genres selected: that is the most at one time."),
        { n: names.length, max: this.max }
      );
    } else {
      count.textContent = interpolate(
        ngettext(
          "%(n)s genre selected (up to %(max)s).",
          "%(n)s genres selected (up to %(max)s).",
          names.length
        ),
        { n: names.length, max: this.max }
      );
    }
    setText(
      $(".js-bar-count", this.bar),
      names.length
        ? interpolate(ngettext("%(n)s selected", "%(n)s selected", names.length), {
            n: number(names.length)
          })
        : gettext("No genre selected")
    );
    var list = $(".js-selected-list", this.form);
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    names.forEach(function (name) {
      var item = document.createElement("li");
      item.textContent = name;
      list.appendChild(item);
    });
    // A long selection scrolls inside the list: it is then a tab stop, so a keyboard can
    // reach and scroll it; a short one stays out of the way to the name field.
    if (list.scrollHeight > list.clientHeight) {
      list.setAttribute("tabindex", "0");
    } else {
      list.removeAttribute("tabindex");
    }
    show($(".js-clear-selection", this.form), names.length > 0);
    this.updateCreate();
  };

  // Create is possible with a selection and no job of the listener still running (the API
  // would only answer with that job).
  Playlists.prototype.updateCreate = function () {
    $(".js-create", this.form).disabled = this.jobActive || this.selected().length === 0;
    show($("#create-busy"), this.jobActive);
  };

  Playlists.prototype.submit = function () {
    var form = this.form;
    var genres = this.selected();
    var pattern = form.elements.namePattern.value.trim();
    if (this.jobActive) {
      return;
    }
    if (!genres.length) {
      S.formMessage(form, gettext("Tick at least one genre first."));
      return;
    }
    if (genres.length > this.max) {
      S.formMessage(form, interpolate(gettext("Choose at most %(max)s genres at a time."), { max: this.max }));
      return;
    }
    if (pattern.indexOf("{genre}") < 0) {
      S.formMessage(
        form,
        gettext("The playlist name must contain {genre}, which becomes each genre's name.")
      );
      return;
    }
    S.formMessage(form, "");
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
    S.api("POST", "/api/playlists", payload).then(
      function (answer) {
        if ((answer.status === 200 || answer.status === 202) && answer.data) {
          self.render(answer.data);
          self.follow(answer.data.id);
        } else {
          S.formMessage(form, S.problem(answer));
        }
        self.updateCreate();
      },
      function () {
        self.updateCreate();
        S.formMessage(form, S.unreachable());
      }
    );
  };

  Playlists.prototype.follow = function (jobId) {
    var self = this;
    var pollId = ++this.pollId;
    S.poll(
      function () {
        if (pollId !== self.pollId) {
          return Promise.resolve(false);
        }
        var url = "/api/playlist-jobs/" + encodeURIComponent(jobId);
        return S.api("GET", url).then(function (answer) {
          if (answer.status !== 200 || !answer.data) {
            setText($(".js-job-summary", self.jobBox), S.problem(answer));
            return false;
          }
          self.render(answer.data);
          var running = answer.data.status === "queued" || answer.data.status === "running";
          return running ? S.POLL_MS : false;
        });
      },
      function () {
        setText($(".js-job-summary", self.jobBox), gettext("Lost contact with Swedify; trying again…"));
      }
    );
  };

  function safeSpotifyUrl(url) {
    return typeof url === "string" && /^https:\/\/open\.spotify\.com\//.test(url) ? url : "";
  }

  Playlists.prototype.render = function (job) {
    var box = this.jobBox;
    var wasActive = this.jobActive;
    box.hidden = false;
    box.setAttribute("data-job-id", job.id || "");
    box.setAttribute("data-job-status", job.status || "");
    $(".js-job-title", box).textContent = JOB_TITLES[job.status] || job.status;
    this.jobActive = job.status === "queued" || job.status === "running";
    var results = job.results || [];
    var byGenre = {};
    results.forEach(function (entry) {
      byGenre[entry.genre] = entry;
    });
    var genres =
      job.genres && job.genres.length
        ? job.genres
        : results.map(function (entry) {
            return entry.genre;
          });
    var done = results.filter(function (entry) {
      return FINISHED.indexOf(entry.status) >= 0;
    }).length;
    var summary = interpolate(gettext("%(done)s of %(total)s genres done."), {
      done: number(done),
      total: number(genres.length)
    });
    if (job.error) {
      summary += " " + S.errorInWords(job.error);
    }
    setText($(".js-job-summary", box), summary);
    setText($(".js-bar-job", this.bar), (JOB_TITLES[job.status] || job.status) + ": " + summary);
    show($(".js-bar-results", this.bar), true);

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
        tracks.textContent = interpolate(gettext("%(added)s added of %(total)s"), {
          added: number(entry.tracksAdded),
          total: number(entry.tracksTotal)
        });
      }
      row.appendChild(name);
      row.appendChild(status);
      row.appendChild(tracks);
      tbody.appendChild(row);
    });
    this.updateCreate();
    if (wasActive && !this.jobActive) {
      // The job just ended: "Your playlists" gains its new playlists and counts.
      S.refreshFragment("/genres", "your-playlists");
    }
  };

  function initGenres() {
    var element = $("#genre-browser");
    if (!element) {
      return;
    }
    $all(".js-genre[disabled]", element).forEach(function (box) {
      box.setAttribute("data-always-disabled", "");
    });
    var browser = new GenreBrowser(element);
    if ($("#playlist-form")) {
      new Playlists(element, browser);
    }
  }

  initGenres();
  document.body.setAttribute("data-ready", "true");
})();
