// Sentinel live feed. Vanilla, no inline script (the CSP forbids it): configuration comes from the
// data- attributes of ol#feed. Items are built with DOM APIs and textContent only (no HTML parsing):
// whatever a log line carried is shown as text.
//
// The stream starts after ol#feed's data-resume (the store's feed head when the page was read), so
// nothing committed between the render and the socket opening is missed; each reconnect (after 1 s,
// doubling to 30 s while the server cannot be reached) resumes after the last cursor received. An
// item already shown (same kind, id and, for an action, state) is not shown twice.
(function () {
  "use strict";
  var feed = document.getElementById("feed");
  var status = document.getElementById("live-status");
  if (!feed || !status || !window.WebSocket) { return; }
  var path = feed.getAttribute("data-stream") || "/v1/stream";
  var kinds = feed.getAttribute("data-kinds") || "alert,action";
  var max = parseInt(feed.getAttribute("data-max") || "200", 10) || 200;
  var cursor = feed.getAttribute("data-resume") || null;
  var delay = 1000;
  var maxDelay = 30000;
  var timer = null;
  var ws = null;

  function say(state, text) {
    status.setAttribute("data-state", state);
    status.textContent = text;
  }

  function text(tag, cls, value) {
    var el = document.createElement(tag);
    if (cls) { el.className = cls; }
    el.textContent = value == null ? "" : String(value);
    return el;
  }

  function subjectText(s) {
    if (s == null) { return ""; }
    if (typeof s === "string") { return s; }
    if (typeof s === "object" && s.type !== undefined) { return String(s.type) + ":" + String(s.value); }
    return JSON.stringify(s);
  }

  function cls(prefix, v) {
    // Class names only from a safe alphabet; the text itself carries the meaning.
    return prefix + String(v == null ? "unknown" : v).toLowerCase().replace(/[^a-z0-9_-]/g, "");
  }

  function timeEl(ts) {
    var t = document.createElement("time");
    if (typeof ts === "string" && ts) {
      t.setAttribute("datetime", ts);
      t.textContent = ts.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC");
    }
    return t;
  }

  function build(msg) {
    var d = msg.data || {};
    var li = document.createElement("li");
    li.setAttribute("data-kind", String(msg.kind || "item"));
    li.setAttribute("data-cursor", String(msg.cursor || ""));
    if (d.id != null) { li.setAttribute("data-id", String(d.id)); }
    if (msg.kind === "action" && d.state != null) { li.setAttribute("data-state", String(d.state)); }
    li.appendChild(timeEl(d.ts || d.created || d.updated));
    li.appendChild(text("span", "kind", msg.kind || "item"));
    if (msg.kind === "alert") {
      var sev = String(d.severity || "unknown");
      li.appendChild(text("span", "sev " + cls("sev-", sev), sev));
      var a = document.createElement("a");
      a.setAttribute("href", "/ui/alerts/" + encodeURIComponent(String(d.id || "")));
      a.textContent = String(d.scenario || "alert");
      li.appendChild(a);
      li.appendChild(text("span", "subject", subjectText(d.subject)));
    } else if (msg.kind === "action") {
      var spec = d.spec || {};
      li.appendChild(text("span", "action-kind", spec.kind || d.kind || "action"));
      li.appendChild(text("span", "subject", subjectText(spec.subject || d.subject)));
      var st = String(d.state || "unknown");
      li.appendChild(text("span", "state " + cls("state-", st), st));
    } else {
      li.appendChild(text("span", "subject", subjectText(d.subject || d.id || "")));
    }
    return li;
  }

  // Whether the feed already shows this item (the page and the stream may both hold an item
  // committed while the page was read). Attributes are compared, never put into a selector.
  function shown(msg) {
    var d = msg.data || {};
    if (d.id == null) { return false; }
    var kind = String(msg.kind || "item");
    var id = String(d.id);
    var state = msg.kind === "action" && d.state != null ? String(d.state) : null;
    for (var el = feed.firstElementChild; el; el = el.nextElementSibling) {
      if (el.getAttribute("data-kind") === kind && el.getAttribute("data-id") === id &&
          (state === null || el.getAttribute("data-state") === state)) {
        return true;
      }
    }
    return false;
  }

  function add(msg) {
    if (shown(msg)) { return; }
    var empty = document.getElementById("feed-empty");
    if (empty) { empty.parentNode.removeChild(empty); }
    feed.insertBefore(build(msg), feed.firstChild);
    while (feed.children.length > max) { feed.removeChild(feed.lastElementChild); }
  }

  function url() {
    var proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    var q = "kind=" + encodeURIComponent(kinds);
    if (cursor) { q += "&cursor=" + encodeURIComponent(cursor); }
    return proto + "//" + window.location.host + path + "?" + q;
  }

  function schedule() {
    if (timer) { return; }
    var secs = Math.round(delay / 1000);
    say("down", "Disconnected: reconnecting in " + secs + " s.");
    timer = window.setTimeout(function () { timer = null; connect(); }, delay);
    delay = Math.min(maxDelay, delay * 2);
  }

  function connect() {
    say("connecting", "Connecting to the live stream…");
    try {
      ws = new WebSocket(url());
    } catch (e) {
      schedule();
      return;
    }
    ws.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (!msg || typeof msg !== "object") { return; }
      if (msg.type === "hello") {
        if (msg.cursor && !cursor) { cursor = String(msg.cursor); }
        delay = 1000;
        say("live", "Live: new alerts and actions appear at the top.");
      } else if (msg.type === "item") {
        add(msg);
        if (msg.cursor) { cursor = String(msg.cursor); }
      }
    };
    ws.onclose = function (ev) {
      ws = null;
      if (ev.code === 1008 || ev.code === 4401 || ev.code === 4403) {
        say("down", "Disconnected: the session has ended. Reload the page to log in again.");
        return;
      }
      schedule();
    };
    ws.onerror = function () { /* onclose follows and reconnects */ };
  }

  window.addEventListener("pagehide", function () { if (ws) { ws.close(1000); } });
  connect();
}());
