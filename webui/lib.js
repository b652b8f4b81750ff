// lib.js - what every page of the admin UI shares: building DOM (never innerHTML with data), formatting, the API
// client (reads open, writes with the admin token from sessionStorage), the connection state shown in the header,
// polling that pauses while the tab is hidden, and the dialogs (token, confirm, prompt).
"use strict";

// ---- DOM ------------------------------------------------------------------------------------------------------
// h("tag.class1.class2", {attr: value, on: {click: fn}, text: "..."}, ...children)
// (spec as in CSS: "tag", "tag#id", "tag.class", "tag.class#id.other")
export function h(spec, attrs, ...kids) {
  const parts = spec.match(/^[a-z0-9]*|[.#][^.#]+/gi) || ["div"];
  const el = document.createElement(parts[0] || "div");
  const classes = [];
  for (const p of parts.slice(1)) {
    if (p[0] === "#") el.id = p.slice(1);
    else classes.push(p.slice(1));
  }
  if (classes.length) el.className = classes.join(" ");
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}

const SVGNS = "http://www.w3.org/2000/svg";
export function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === "text") el.textContent = String(v);
    else if (k === "class") el.setAttribute("class", v);
    else if (k === "value" && "value" in el) el.value = v;
    else if (k === "checked" || k === "disabled" || k === "selected" || k === "required") el[k] = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

export function append(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}

// replace el's children, skipping null / undefined / false (native replaceChildren would write "null")
// A poll that redraws a table would take the keyboard focus away from a link or button in it: the focused
// element's equivalent in the new content (same tag, label, target and text) gets the focus back.
function focusKey(e) {
  return [e.tagName, e.id, e.getAttribute("aria-label") || "", e.getAttribute("href") || "", e.getAttribute("data-snippet") || "", e.textContent].join("|");
}
export function fill(el, ...kids) {
  const act = document.activeElement;
  const key = act && act !== document.body && el.contains(act) ? focusKey(act) : null;
  el.replaceChildren();
  append(el, kids);
  if (key) {
    for (const c of el.querySelectorAll("a, button, input, select, textarea, [tabindex]")) {
      if (focusKey(c) === key) { c.focus({ preventScroll: true }); break; }
    }
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

// a table inside its own scrolling container (so a narrow screen never scrolls the page sideways)
export function table(caption, headers, rows, opts = {}) {
  const t = h("table" + (opts.cls ? "." + opts.cls : ""), null,
    caption ? h("caption.sr-only", { text: caption }) : null,
    h("thead", null, h("tr", null, headers.map((x) => h("th", { scope: "col", text: x })))),
    h("tbody", null, rows));
  return h("div.table-wrap", { tabindex: "0", role: "region", "aria-label": caption || "table" }, t);
}

export function td(content, cls) {
  return h("td" + (cls ? "." + cls : ""), null, content);
}

export function button(label, onclick, cls = "", attrs = {}) {
  return h("button" + (cls ? "." + cls.split(" ").join(".") : ""), { type: "button", on: { click: onclick }, ...attrs }, label);
}

// ---- formatting -----------------------------------------------------------------------------------------------
export function fmtBytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  let v = Number(n);
  const neg = v < 0;
  v = Math.abs(v);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (neg ? "−" : "") + (i ? v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0) : v) + " " + u[i];
}
export function fmtCount(n) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en-US");
}
export function fmtPct(r) {
  if (r === null || r === undefined || Number.isNaN(r)) return "–";
  return (r * 100).toFixed(r >= 0.995 || r === 0 ? 0 : 1) + " %";
}
export function now() { return Math.floor(Date.now() / 1000); }
export function fmtAge(t) {
  if (!t) return "never";
  let d = now() - t;
  const future = d < 0;
  d = Math.abs(d);
  let out;
  if (d < 60) out = d + " s";
  else if (d < 3600) out = Math.floor(d / 60) + " min";
  else if (d < 86400 * 2) out = Math.floor(d / 3600) + " h";
  else out = Math.floor(d / 86400) + " d";
  return future ? "in " + out : out + " ago";
}
export function fmtTime(t) {
  if (!t) return "–";
  const d = new Date(t * 1000);
  return d.toLocaleString("en-GB", { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}
export function fmtDuration(secs) {
  if (secs === null || secs === undefined) return "–";
  if (secs < 60) return secs + " s";
  if (secs < 3600) return Math.floor(secs / 60) + " min";
  if (secs < 86400) return Math.floor(secs / 3600) + " h " + Math.floor((secs % 3600) / 60) + " min";
  return Math.floor(secs / 86400) + " d " + Math.floor((secs % 86400) / 3600) + " h";
}

// ---- live announcements (screen readers) ----------------------------------------------------------------------
export function announce(msg) {
  const el = $("#announce");
  if (!el) return;
  el.textContent = "";
  // a change of text is what a live region reports; clearing first makes the same message twice be read twice
  setTimeout(() => { el.textContent = msg; }, 30);
}

// ---- connection state -----------------------------------------------------------------------------------------
const connListeners = new Set();
export const conn = {
  up: null, // null: not known yet
  offline: false,
  version: "",
  set(up, info) {
    const was = this.up;
    this.up = up;
    if (info) { this.offline = !!info.offline; this.version = info.version || this.version; }
    for (const f of connListeners) f(up, was);
  },
  onChange(f) { connListeners.add(f); },
};

// ---- API ------------------------------------------------------------------------------------------------------
export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body || {};
  }
}

const TOKEN_KEY = "larder-token";
export const token = {
  get() { return sessionStorage.getItem(TOKEN_KEY) || ""; },
  set(t) { if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY); tokenChanged(); },
};
const tokenListeners = new Set();
export function onTokenChange(f) { tokenListeners.add(f); }
function tokenChanged() { for (const f of tokenListeners) f(token.get()); }

const BASE = "/-/api/v1/";

async function doFetch(url, init) {
  let r;
  try {
    r = await fetch(url, { cache: "no-store", credentials: "omit", ...init });
  } catch (e) {
    conn.set(false);
    throw new ApiError(0, "cannot reach Larder (" + (e.message || "network error") + ")");
  }
  if (conn.up !== true) conn.set(true);
  return r;
}

async function errorOf(r) {
  let body = {};
  const text = await r.text().catch(() => "");
  try { body = JSON.parse(text); } catch { body = {}; }
  const msg = body.error || text.trim().slice(0, 300) || "HTTP " + r.status;
  return new ApiError(r.status, msg, body);
}

// GET a JSON document (reads are open: no token sent)
export async function get(path) {
  const r = await doFetch(BASE + path, { headers: { Accept: "application/json" } });
  if (!r.ok) throw await errorOf(r);
  return r.json();
}

// GET a path outside /-/api/v1 (e.g. /-/health)
export async function getAbs(path) {
  const r = await doFetch(path, { headers: { Accept: "application/json" } });
  if (!r.ok) throw await errorOf(r);
  return r.json();
}

// an authenticated request; asks for the token when none is kept, and again once when the daemon refuses it (401).
// as: "json" (default), "text" or "blob"
export async function send(method, path, body, opts = {}) {
  let t = token.get();
  if (!t) {
    t = await askToken("This action changes the cache: enter the admin token (admin.token in larder.yaml).");
    if (!t) throw new ApiError(401, "no admin token given");
  }
  for (let attempt = 0; ; attempt++) {
    const headers = { Authorization: "Bearer " + t };
    if (body !== undefined && body !== null) headers["Content-Type"] = opts.contentType || "text/plain; charset=utf-8";
    const r = await doFetch(BASE + path, { method, body: body === undefined ? undefined : body, headers });
    if (r.status === 401 && attempt === 0) {
      token.set("");
      t = await askToken("The daemon refused the admin token. Enter it again (admin.token in larder.yaml).");
      if (!t) throw new ApiError(401, "the admin token was refused");
      continue;
    }
    if (!r.ok) throw await errorOf(r);
    if (opts.as === "blob") return { blob: await r.blob(), headers: r.headers };
    if (opts.as === "text") return r.text();
    const txt = await r.text();
    try { return txt ? JSON.parse(txt) : {}; } catch { return {}; }
  }
}

// GET something that is not JSON (a spec's YAML)
export async function getText(path) {
  const r = await doFetch(BASE + path, {});
  if (!r.ok) throw await errorOf(r);
  return r.text();
}

// ---- polling --------------------------------------------------------------------------------------------------
// every(ms, fn): runs fn now and then every ms while the page is visible; the router stops a page's pollers when
// the page is left (stopAll). fn may return a promise; the next run waits for it.
const pollers = new Set();
export function every(ms, fn) {
  const p = { ms, fn, timer: null, stopped: false, running: false, again: false };
  p.run = async () => {
    if (p.stopped) return;
    if (p.running) { p.again = true; return; } // asked for fresh data while a run is under way: once more after it
    clearTimeout(p.timer);
    if (document.hidden) return; // visibilitychange restarts it
    p.running = true;
    do {
      p.again = false;
      try { await fn(); } catch (e) { /* the page shows its own errors */ }
    } while (p.again && !p.stopped);
    p.running = false;
    if (!p.stopped) p.timer = setTimeout(p.run, typeof p.ms === "function" ? p.ms() : p.ms);
  };
  p.stop = () => { p.stopped = true; clearTimeout(p.timer); pollers.delete(p); };
  p.now = () => p.run();
  pollers.add(p);
  p.run();
  return p;
}
export function stopAll() { for (const p of [...pollers]) if (!p.keep) p.stop(); }
export function pollNow() { for (const p of pollers) p.run(); }
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) for (const p of pollers) p.run();
});

// ---- dialogs --------------------------------------------------------------------------------------------------
// each returns a promise; Escape or Cancel resolves to null / false; focus returns to where it was
function openDialog(dlg, focusEl) {
  const before = document.activeElement;
  dlg.showModal();
  if (focusEl) focusEl.focus();
  return () => {
    if (dlg.open) dlg.close();
    if (before && before.focus) before.focus();
  };
}

let tokenWaiters = [];
export function askToken(why) {
  const dlg = $("#token-dialog");
  $("#token-why").textContent = why || "Writes (seeding, unpinning, deleting, recording) need the admin token.";
  const input = $("#token-input");
  input.value = token.get();
  return new Promise((resolve) => {
    tokenWaiters.push(resolve);
    if (!dlg.open) openDialog(dlg, input);
  });
}
export function initTokenDialog() {
  const dlg = $("#token-dialog");
  const form = $("#token-form");
  const finish = (val) => {
    dlg.close();
    const ws = tokenWaiters;
    tokenWaiters = [];
    for (const w of ws) w(val);
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const v = $("#token-input").value.trim();
    token.set(v);
    announce(v ? "admin token kept for this tab" : "admin token forgotten");
    finish(v || null);
  });
  $("#token-cancel").addEventListener("click", () => finish(null));
  $("#token-forget").addEventListener("click", () => {
    $("#token-input").value = "";
    token.set("");
    announce("admin token forgotten");
    finish(null);
  });
  dlg.addEventListener("cancel", () => finish(null));
}

export function confirmDialog(title, lines, okLabel = "OK", danger = true) {
  const dlg = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  const body = $("#confirm-body");
  body.replaceChildren(...(Array.isArray(lines) ? lines : [lines]).map((l) => (l instanceof Node ? l : h("p", { text: l }))));
  const ok = $("#confirm-ok");
  ok.textContent = okLabel;
  ok.className = danger ? "danger" : "primary";
  return new Promise((resolve) => {
    const close = openDialog(dlg, $("#confirm-cancel"));
    const done = (v) => {
      ok.removeEventListener("click", onOk);
      $("#confirm-cancel").removeEventListener("click", onCancel);
      dlg.removeEventListener("cancel", onCancel);
      close();
      resolve(v);
    };
    const onOk = () => done(true);
    const onCancel = (e) => { if (e) e.preventDefault(); done(false); };
    ok.addEventListener("click", onOk);
    $("#confirm-cancel").addEventListener("click", onCancel);
    dlg.addEventListener("cancel", onCancel);
  });
}

// promptDialog(title, label, {value, options (datalist), help}) -> string or null
export function promptDialog(title, label, opts = {}) {
  const dlg = $("#prompt-dialog");
  $("#prompt-title").textContent = title;
  $("#prompt-label").textContent = label;
  $("#prompt-help").textContent = opts.help || "";
  const input = $("#prompt-input");
  input.value = opts.value || "";
  input.setAttribute("pattern", opts.pattern || ".*");
  const dl = $("#prompt-options");
  dl.replaceChildren(...(opts.options || []).map((o) => h("option", { value: o })));
  const form = $("#prompt-form");
  return new Promise((resolve) => {
    const close = openDialog(dlg, input);
    const done = (v) => {
      form.removeEventListener("submit", onSubmit);
      $("#prompt-cancel").removeEventListener("click", onCancel);
      dlg.removeEventListener("cancel", onCancel);
      close();
      resolve(v);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      if (!input.checkValidity()) { input.reportValidity(); return; }
      done(input.value.trim() || null);
    };
    const onCancel = (e) => { if (e) e.preventDefault(); done(null); };
    form.addEventListener("submit", onSubmit);
    $("#prompt-cancel").addEventListener("click", onCancel);
    dlg.addEventListener("cancel", onCancel);
  });
}

// ---- misc -----------------------------------------------------------------------------------------------------
// a message line under a form: role=status for news, role=alert for errors
export function msgLine(id) {
  return h("p.msg", { id, role: "status", "aria-live": "polite" });
}
export function showMsg(el, text, kind = "") {
  el.className = "msg" + (kind ? " " + kind : "");
  el.setAttribute("role", kind === "error" ? "alert" : "status");
  el.textContent = text;
}

export function downloadBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: filename, class: "sr-only" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export async function copyText(text, btn) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    // clipboard API needs a secure context (https or localhost): fall back to a selected textarea
    const ta = h("textarea.sr-only", { "aria-hidden": "true" });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    try { ok = document.execCommand("copy"); } catch { ok = false; }
    ta.remove();
  }
  if (btn) {
    const old = btn.dataset.label || btn.textContent;
    btn.dataset.label = old;
    btn.textContent = ok ? "Copied" : "Copy failed: select the text";
    setTimeout(() => { btn.textContent = old; }, 1800);
  }
  announce(ok ? "copied to the clipboard" : "could not copy: select the text and copy it");
  return ok;
}

export function debounce(fn, ms) {
  let t;
  const d = (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
  d.cancel = () => clearTimeout(t);
  return d;
}

export function stateBadge(state) {
  return h("span.state.state-" + String(state || "unknown").replace(/[^a-z]/g, ""), { text: state || "?" });
}

export function progressBar(done, failed, total, label, cancelled = 0) {
  const pct = (n) => (total ? Math.max(0, Math.min(100, (n / total) * 100)) : 0);
  const bar = h("div.progress", {
    role: "progressbar", "aria-valuemin": "0", "aria-valuemax": String(total || 0),
    "aria-valuenow": String((done || 0) + (failed || 0)), "aria-label": label || "progress",
  });
  const ok = h("span.progress-done");
  const bad = h("span.progress-failed");
  const off = h("span.progress-cancelled");
  // widths through the CSSOM: allowed by a CSP without 'unsafe-inline' (style="" attributes are not)
  ok.style.width = pct(done || 0) + "%";
  bad.style.width = pct(failed || 0) + "%";
  off.style.width = pct(cancelled || 0) + "%";
  bar.append(ok, bad, off);
  return bar;
}

export function meter(used, limit, label) {
  const m = h("div.meter", { role: "img", "aria-label": label });
  const fill = h("span.meter-fill");
  const r = limit ? used / limit : 0;
  fill.style.width = Math.min(100, r * 100).toFixed(1) + "%";
  if (r > 0.9) fill.classList.add("meter-hot");
  m.append(fill);
  return m;
}

// pin set / job names the daemon accepts
export const NAME_PATTERN = "[A-Za-z0-9._\\-]{1,64}";
