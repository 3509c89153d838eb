// Herald admin UI: progressive enhancement only. Every page works without this script;
// it adds live status updates, instant filtering, copy buttons and confirmation dialogs.
(function () {
  "use strict";
  var live = function (text) {
    var el = document.getElementById("live");
    if (el) { el.textContent = ""; window.setTimeout(function () { el.textContent = text; }, 50); }
  };

  // Copy buttons: <button data-copy="#input-id">.
  document.querySelectorAll("[data-copy]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var src = document.querySelector(btn.getAttribute("data-copy"));
      if (!src) return;
      var done = function () { btn.textContent = "Copied"; live("Copied to the clipboard");
        window.setTimeout(function () { btn.textContent = "Copy"; }, 2000); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(src.value).then(done, function () { src.select(); });
      } else {
        src.select();
        try { if (document.execCommand("copy")) done(); } catch (e) { /* text stays selected */ }
      }
    });
  });

  // Confirmation dialogs: <form data-confirm="Question?">. The server still asks on its own
  // page when the form arrives without confirmed=yes (no script, or the dialog was skipped).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { ev.preventDefault(); return; }
      if (!form.querySelector("input[name=confirmed]")) {
        var i = document.createElement("input");
        i.type = "hidden"; i.name = "confirmed"; i.value = "yes";
        form.appendChild(i);
      }
    });
  });

  // Event types follow the chosen format: only types it can carry are shown and sent.
  document.querySelectorAll("select[data-event-formats]").forEach(function (sel) {
    var sync = function () {
      document.querySelectorAll("[data-formats]").forEach(function (box) {
        var on = box.getAttribute("data-formats").split(" ").indexOf(sel.value) >= 0;
        box.hidden = !on;
        box.querySelectorAll("input").forEach(function (i) { i.disabled = !on; });
      });
    };
    sel.addEventListener("change", function () { sync(); live("Event types updated for the " + sel.value + " format"); });
    sync();
  });

  // Instant filtering of the webhooks table (the form still works as a plain GET).
  var filters = document.querySelectorAll("[data-filter]");
  if (filters.length) {
    document.querySelectorAll("[data-js-hide]").forEach(function (el) { el.hidden = true; });
    var apply = function () {
      var table = document.querySelector(filters[0].getAttribute("data-filter"));
      if (!table) return;
      var q = (document.getElementById("q") || { value: "" }).value.trim().toLowerCase();
      var st = (document.getElementById("status-filter") || { value: "" }).value;
      var rows = table.querySelectorAll("tbody tr"), shown = 0;
      rows.forEach(function (tr) {
        var ok = (!q || tr.getAttribute("data-search").indexOf(q) >= 0) &&
                 (!st || tr.getAttribute("data-status") === st);
        tr.hidden = !ok; if (ok) shown++;
      });
      var count = document.getElementById("filter-count");
      if (count) count.textContent = shown + " of " + rows.length + " webhooks shown";
      var url = new URL(window.location.href);
      q ? url.searchParams.set("q", q) : url.searchParams.delete("q");
      st ? url.searchParams.set("status", st) : url.searchParams.delete("status");
      window.history.replaceState(null, "", url);
    };
    filters.forEach(function (el) { el.addEventListener("input", apply); el.addEventListener("change", apply); });
  }

  // Live status: poll a small JSON feed and update badges and times in place.
  var badge = function (item) {
    var span = document.createElement("span");
    span.className = "badge badge-" + item.status;
    span.title = item.detail;
    span.setAttribute("data-status", item.status);
    span.appendChild(document.createTextNode(item.label));
    var sr = document.createElement("span");
    sr.className = "sr-only"; sr.textContent = " (" + item.detail + ")";
    span.appendChild(sr);
    return span;
  };
  var pollFeed = function (url, update) {
    var stopped = false;
    var tick = function () {
      if (stopped) return;
      if (document.hidden) { window.setTimeout(tick, 3000); return; }
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (r.status === 401) { stopped = true; throw new Error("signed out"); }
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (data) { update(data); window.setTimeout(tick, 3000); })
        .catch(function (e) {
          var note = document.getElementById("poll-note");
          if (stopped && note) { note.textContent = "Your session ended. Reload the page to sign in again."; return; }
          window.setTimeout(tick, 10000);
        });
    };
    window.setTimeout(tick, 3000);
  };
  var applyItem = function (root, item) {
    var cell = root.querySelector("[data-cell=status]");
    if (!cell) return;
    var old = cell.querySelector(".badge");
    var oldStatus = old ? old.getAttribute("data-status") : "";
    var oldTitle = old ? old.title : "";
    if (oldStatus !== item.status || oldTitle !== item.detail) {
      cell.replaceChildren(badge(item));
      if (oldStatus !== item.status) {
        var name = root.querySelector("a");
        live((name ? name.textContent + ": " : "Status: ") + item.label + " (" + item.detail + ")");
      }
    }
    var row = root.tagName === "TR";
    if (row) root.setAttribute("data-status", item.status);
    var when = root.querySelector("[data-cell=when]");
    if (when && item.when) {
      var prefix = row ? "" : "Last execution ";
      if (when.innerHTML !== prefix + item.when) when.innerHTML = prefix + item.when; // server-escaped HTML
    }
  };
  var table = document.querySelector("table[data-poll]");
  var single = document.getElementById("webhook-status");
  if (table || single) {
    pollFeed("/admin/webhooks/status.json", function (data) {
      data.webhooks.forEach(function (item) {
        var row = table && table.querySelector('tr[data-id="' + item.id + '"]');
        if (row) applyItem(row, item);
        if (single && single.getAttribute("data-id") === item.id) applyItem(single, item);
      });
    });
  }

  // Fragments that refresh themselves: <section data-refresh="/url">, replaced when changed,
  // unless focus is inside (never pull content from under a keyboard user).
  document.querySelectorAll("[data-refresh]").forEach(function (el) {
    var url = el.getAttribute("data-refresh");
    var last = null;
    var tick = function () {
      if (document.hidden || el.contains(document.activeElement)) { window.setTimeout(tick, 3000); return; }
      fetch(url, { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.text(); })
        .then(function (html) {
          if (last !== html) {
            var tpl = document.createElement("template");
            tpl.innerHTML = html; // server-rendered, escaped fragment from our own origin
            el.replaceChildren(tpl.content);
          }
          last = html;
          window.setTimeout(tick, 3000);
        })
        .catch(function () { window.setTimeout(tick, 10000); });
    };
    window.setTimeout(tick, 3000);
  });
})();
