// Live screens (orders/live.py). Every element with data-live is a region of the page that shows
// orders: once a second (while the tab is visible) it asks the server, from the cache alone,
// whether what it watches changed since it was drawn; when it did, the region is fetched again
// and swapped. A region holding what the user is doing is not swapped: a form being filled in
// (an edited field, or the focus in a field), or something they opened inside it (more rows of
// the list, older timeline entries, a revealed number). The banner says the order changed, and
// the region is refreshed when the user asks, or by itself once the form is left untouched.
//
// What the server is asked, in a browser with several of the cockpit's tabs: a hidden tab asks
// nothing and asks at once when shown again; tabs watching the same thing share one check a
// second (BroadcastChannel): each answer is told to the other tabs, which act on it as on their
// own and skip their check while such an answer is fresh and covers what they show.
(function () {
  "use strict";
  var INTERVAL_MS = 1000;
  // A region's refresh still on its way is not asked for again before this (a slow server).
  var REFRESH_PATIENCE_MS = 5000;
  var banner = document.getElementById("live-banner");
  if (!banner || !window.fetch) return;
  var checkUrl = banner.dataset.checkUrl;
  var waiting = {}; // region id → true: changed while the user was in a form there
  var stopped = false;
  var timer = null; // the next tick, while none is running
  var channel = window.BroadcastChannel ? new BroadcastChannel("beile-live") : null;
  var heard = {}; // watch → {at, token}: the last answer another tab told of

  // Tokens are nanoseconds (19 digits), beyond a JS number's precision: compared as digit strings.
  function newer(token, since) {
    if (!since) return true;
    return token.length !== since.length ? token.length > since.length : token > since;
  }

  function regions() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-live][id]"));
  }

  function edited(field) {
    if (field.type === "hidden" || field.type === "submit" || field.type === "button" || field.disabled) return false;
    if (field.type === "checkbox" || field.type === "radio") return field.checked !== field.defaultChecked;
    if (field.tagName === "SELECT") {
      for (var i = 0; i < field.options.length; i++) {
        var option = field.options[i];
        // A single select with no option marked selected starts on its first one.
        var initially = option.defaultSelected || (!field.multiple && i === 0 && !field.querySelector("option[selected]"));
        if (option.selected !== initially) return true;
      }
      return false;
    }
    return field.value !== field.defaultValue;
  }

  function busy(region) {
    if (region.dataset.liveOpened) return true;
    var active = document.activeElement;
    if (active && region.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName) && active.type !== "hidden") {
      return true;
    }
    var fields = region.querySelectorAll("input, textarea, select");
    for (var i = 0; i < fields.length; i++) {
      if (edited(fields[i])) return true;
    }
    return false;
  }

  function refresh(region) {
    delete waiting[region.id];
    region.dataset.liveRefreshing = Date.now();
    var selector = "#" + CSS.escape(region.id);
    // htmx sends HX-Request and HX-Target (the region's id): the views answer with the region's
    // fragment where they have one, the whole page otherwise; `select` takes the region from
    // either. The region is the request's source, so two regions of a page refreshing at once
    // each keep their own request (htmx keeps one request and one queued per source). The new
    // region brings its own since; a refresh that fails leaves the old one, asked again.
    return htmx.ajax("GET", region.dataset.liveUrl || window.location.href, {
      source: region, target: selector, swap: "outerHTML", select: selector,
    });
  }

  function showBanner() {
    banner.hidden = Object.keys(waiting).length === 0;
  }

  function changed(region, token) {
    if (busy(region)) {
      region.dataset.liveSince = token; // told once: the banner stays until the user refreshes
      waiting[region.id] = true;
    } else if (!(Date.now() - region.dataset.liveRefreshing < REFRESH_PATIENCE_MS)) {
      refresh(region);
    }
  }

  function oldestSince(group) {
    return group.reduce(function (oldest, region) {
      return newer(oldest, region.dataset.liveSince) ? region.dataset.liveSince : oldest;
    }, group[0].dataset.liveSince);
  }

  function check(watch, group) {
    return fetch(checkUrl + "?watch=" + encodeURIComponent(watch), {
      headers: { "If-None-Match": '"' + oldestSince(group) + '"', "X-Live-Key": group[0].dataset.liveKey },
      cache: "no-store",
      credentials: "same-origin",
    }).then(function (response) {
      if (response.status === 403) stopped = true; // signed out: nothing more to watch
      if (response.status === 304) {
        // Nothing newer than the ETag's token: the other tabs showing at least that skip theirs.
        var etag = (response.headers.get("ETag") || "").replace(/"/g, "");
        if (channel && etag) channel.postMessage({ watch: watch, token: etag, changed: false });
      }
      if (response.status !== 200) return;
      return response.text().then(function (token) {
        token = token.trim();
        if (channel) channel.postMessage({ watch: watch, token: token, changed: true });
        group.forEach(function (region) {
          if (newer(token, region.dataset.liveSince)) changed(region, token);
        });
      });
    });
  }

  function groupsByWatch() {
    var groups = {};
    regions().forEach(function (region) {
      (groups[region.dataset.live] = groups[region.dataset.live] || []).push(region);
    });
    return groups;
  }

  // Another tab's answer within the last second that covers every region of the group.
  function coveredByAnotherTab(watch, group) {
    var answer = heard[watch];
    return answer && Date.now() - answer.at < INTERVAL_MS && !newer(answer.token, oldestSince(group));
  }

  if (channel) {
    channel.onmessage = function (event) {
      var answer = event.data;
      if (stopped || document.hidden || !answer || typeof answer.token !== "string") return;
      heard[answer.watch] = { at: Date.now(), token: answer.token };
      if (!answer.changed) return;
      (groupsByWatch()[answer.watch] || []).forEach(function (region) {
        if (newer(answer.token, region.dataset.liveSince)) changed(region, answer.token);
      });
      showBanner();
    };
  }

  function tick() {
    timer = null;
    if (stopped) return;
    var started = Date.now();
    var work = [];
    if (!document.hidden) {
      // The regions left waiting are refreshed once the user has left their form.
      Object.keys(waiting).forEach(function (id) {
        var region = document.getElementById(id);
        if (!region) delete waiting[id];
        else if (!busy(region)) refresh(region);
      });
      // Regions watching the same thing (two lists on one page) share one check.
      var groups = groupsByWatch();
      Object.keys(groups).forEach(function (watch) {
        if (coveredByAnotherTab(watch, groups[watch])) return;
        work.push(check(watch, groups[watch]).catch(function () {})); // offline for a moment: next tick
      });
    }
    Promise.all(work).then(function () {
      showBanner();
      // Once a second, however long the check took.
      timer = window.setTimeout(tick, Math.max(0, started + INTERVAL_MS - Date.now()));
    });
  }

  // Shown again: check at once rather than at the next second (a tick on its way will).
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || timer === null) return;
    window.clearTimeout(timer);
    tick();
  });

  // An htmx swap into part of a region (not of the region itself, as the region's own actions
  // and this file's refresh do) is something the user opened there: kept until they refresh.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    var region = target && target.closest ? target.closest("[data-live]") : null;
    if (region && region !== target) region.dataset.liveOpened = "1";
  });

  document.getElementById("live-refresh").addEventListener("click", function () {
    Object.keys(waiting).forEach(function (id) {
      var region = document.getElementById(id);
      if (region) refresh(region);
      else delete waiting[id];
    });
    showBanner();
  });
  tick();
})();
