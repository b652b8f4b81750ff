// pins.js - pin sets: the list (with what would become evictable on unpin), one set's entries, its seed spec
// (shown, copied, downloaded), its bundle (fetched with the token into a blob), unpinning with a confirmation,
// and recording a build into a set (POST/DELETE/GET /-/api/v1/record).
"use strict";
import { fill, h, get, getText, send, every, table, td, fmtBytes, fmtCount, fmtAge, fmtTime, announce, msgLine, showMsg, button,
  confirmDialog, downloadBlob, copyText, NAME_PATTERN, token } from "./lib.js";

async function unpin(set, msg, after) {
  let info = set;
  if (info.exclusive_entries === undefined) {
    try { info = (await get("pins")).pin_sets.find((p) => p.name === set.name) || set; } catch { /* use what we have */ }
  }
  const lines = [];
  if (info.exclusive_entries !== undefined) {
    lines.push(info.exclusive_entries
      ? fmtCount(info.exclusive_entries) + " entr" + (info.exclusive_entries === 1 ? "y" : "ies") + " (" + fmtBytes(info.exclusive_bytes) +
        ") are pinned by this set only: they stay cached but become evictable when a quota needs room."
      : "Every entry of this set is pinned by another set too: nothing becomes evictable.");
  } else {
    lines.push(fmtCount(info.entries) + " entries (" + fmtBytes(info.bytes) + ") stay cached but may become evictable.");
  }
  lines.push("Builds that need this set offline will fail once its entries are evicted. Seed it again from its spec to get it back.");
  const ok = await confirmDialog("Unpin " + set.name + "?", lines, "Unpin " + set.name);
  if (!ok) return false;
  try {
    const r = await send("DELETE", "pins/" + encodeURIComponent(set.name));
    showMsg(msg, "Unpinned " + set.name + (r.unpinned !== undefined ? " (" + fmtCount(r.unpinned) + " entries)" : "") + ".", "ok");
    announce("pin set " + set.name + " unpinned");
    if (after) after();
    return true;
  } catch (e) {
    showMsg(msg, "Unpin: " + e.message, "error");
    return false;
  }
}

async function downloadBundle(name, msg, btn) {
  if (!token.get()) announce("the bundle download needs the admin token");
  btn.disabled = true;
  showMsg(msg, "Building the bundle of " + name + "… (the daemon streams it; the browser holds it in memory until it is saved)");
  try {
    const { blob, headers } = await send("GET", "pins/" + encodeURIComponent(name) + "/bundle", undefined, { as: "blob" });
    let fname = name + ".larder-bundle";
    const cd = headers.get("Content-Disposition") || "";
    const m = /filename="?([^";]+)"?/.exec(cd);
    if (m) fname = m[1];
    downloadBlob(blob, fname);
    showMsg(msg, "Bundle " + fname + " (" + fmtBytes(blob.size) + ") saved. Import it elsewhere with `larder import " + fname + "`.", "ok");
  } catch (e) {
    showMsg(msg, "Bundle: " + e.message, "error");
  } finally {
    btn.disabled = false;
  }
}

function recordPanel() {
  const box = h("div#record-box");
  const msg = msgLine("record-msg");
  const setIn = h("input#record-set", { type: "text", pattern: NAME_PATTERN, required: true, autocomplete: "off", spellcheck: "false", placeholder: "e.g. tutor-build-1" });
  const clientIn = h("input#record-client", { type: "text", autocomplete: "off", spellcheck: "false", placeholder: "any client", "aria-describedby": "record-client-help" });
  let state = null;
  async function start() {
    const name = setIn.value.trim();
    if (!name || !setIn.checkValidity()) { showMsg(msg, "Name the pin set to record into (1-64 characters of A-Z a-z 0-9 . _ -).", "error"); setIn.focus(); return; }
    const body = { pin_set: name };
    if (clientIn.value.trim()) body.client = clientIn.value.trim();
    try {
      state = await send("POST", "record", JSON.stringify(body), { contentType: "application/json" });
      showMsg(msg, "Recording into " + name + ": everything served from now on is pinned there.", "ok");
      announce("recording started");
    } catch (e) { showMsg(msg, "Record: " + e.message, "error"); }
    poll.now();
  }
  async function stop() {
    try {
      state = await send("DELETE", "record");
      showMsg(msg, "Recording stopped: " + fmtCount(state.recorded || 0) + " objects recorded into " + state.pin_set + ".", "ok");
      announce("recording stopped");
    } catch (e) { showMsg(msg, "Stop: " + e.message, "error"); }
    poll.now();
  }
  const form = h("div.record-form", null,
    h("div.form-grid", null,
      h("div.field", null, h("label", { for: "record-set" }, "Record into pin set"), setIn),
      h("div.field", null, h("label", { for: "record-client" }, "Only from client (optional)"), clientIn,
        h("p.hint#record-client-help", { text: "An IP address: only that machine's downloads are recorded." }))),
    h("div.row.buttons", null, button("Start recording", start, "primary", { id: "record-start" })));
  const poll = every(5000, async () => {
    try { state = await get("record"); } catch (e) {
      fill(box, h("p.msg", { text: e.status === 503 || e.status === 404 ? "Recording is not available on this daemon." : e.status === 0 ? "Cannot reach Larder." : "Record: " + e.message }));
      return;
    }
    if (state.recording) {
      fill(box, h("p#record-state.recording", null, h("span.rec-dot", { "aria-hidden": "true" }), "Recording into ",
        h("a", { href: "#/pins/" + encodeURIComponent(state.pin_set), text: state.pin_set }),
        state.client ? " (client " + state.client + ")" : " (every client)", " since " + fmtTime(state.started_at) + ": " +
        fmtCount(state.recorded || 0) + " recorded, " + fmtCount(state.served || 0) + " served, " + fmtCount(state.skipped || 0) + " skipped."),
      h("div.row.buttons", null, button("Stop recording", stop, "danger", { id: "record-stop" })));
    } else {
      const last = state.pin_set ? h("p.muted#record-state", { text: "Not recording. The last recording went into " + state.pin_set + " (" + fmtCount(state.recorded || 0) + " object" + (state.recorded === 1 ? "" : "s") + ", stopped " + fmtAge(state.stopped_at) + ")." })
        : h("p.muted#record-state", { text: "Not recording." });
      if (!box.contains(form)) fill(box, last, form);
      else box.firstChild.replaceWith(last);
    }
  });
  return h("section", { "aria-labelledby": "h-record" }, h("h2#h-record", { text: "Record a build" }),
    h("p.hint", { text: "While a recording runs, every object Larder serves (to one client, or to all) is pinned into the set: run your build once online, stop, and the set holds everything it needed." }),
    box, msg);
}

export function render(main, { args }) {
  if (args && args[0]) return renderSet(main, args[0]);
  const msg = msgLine("pins-msg");
  const listBox = h("div#pins-list", null, h("p.muted", { text: "Loading…" }));
  main.append(h("h1", { text: "Pin sets" }),
    h("section", { "aria-labelledby": "h-sets" }, h("h2#h-sets", { text: "Sets" }),
      h("p.hint", { text: "Pinned entries are never evicted. A set is made by a seed job or a recording." }), msg, listBox),
    recordPanel());
  const poll = every(5000, async () => {
    let d;
    try { d = await get("pins"); } catch (e) { fill(listBox, h("p.msg", { text: e.status === 0 ? "Cannot reach Larder." : "Pins: " + e.message })); return; }
    const sets = (d.pin_sets || []).slice().sort((a, b) => a.name.localeCompare(b.name));
    if (!sets.length) { fill(listBox, h("p.muted", null, "No pin sets yet. ", h("a", { href: "#/seed", text: "Seed one" }), " or record a build below.")); return; }
    fill(listBox, table("Pin sets", ["set", "entries", "bytes", "evictable on unpin", ""], sets.map((p) => h("tr", { "data-set": p.name },
      h("th", { scope: "row" }, h("a", { href: "#/pins/" + encodeURIComponent(p.name), text: p.name })),
      td(fmtCount(p.entries), "num"), td(fmtBytes(p.bytes), "num"),
      td(p.exclusive_entries !== undefined ? fmtCount(p.exclusive_entries) + " (" + fmtBytes(p.exclusive_bytes) + ")" : "–", "num"),
      td(h("div.row-actions", null,
        h("a.button-link.small", { href: "#/pins/" + encodeURIComponent(p.name), "aria-label": "Open pin set " + p.name, text: "Open" }),
        button("Unpin", () => unpin(p, msg, () => poll.now()), "danger small", { "aria-label": "Unpin " + p.name })))))));
  });
}

function renderSet(main, name) {
  const msg = msgLine("set-msg");
  const summary = h("p.lede#set-summary", { text: "Loading…" });
  const specBox = h("div#spec-box");
  const entriesBox = h("div#set-entries");
  const specBtn = button("Show seed spec", () => showSpec(), "", { id: "set-spec" });
  const bundleBtn = button("Download bundle", () => downloadBundle(name, msg, bundleBtn), "", { id: "set-bundle" });
  const unpinBtn = button("Unpin this set", async () => {
    if (await unpin({ name, ...(setInfo || {}) }, msg)) location.hash = "#/pins";
  }, "danger", { id: "set-unpin" });
  let setInfo = null;
  main.append(
    h("p.crumbs", null, h("a", { href: "#/pins", text: "Pin sets" }), " › set"),
    h("h1", null, "Pin set ", h("code", { text: name })), summary,
    h("div.row.buttons", null, specBtn, bundleBtn, unpinBtn),
    h("p.hint", { text: "The bundle carries every entry of the set for `larder import` on a machine without internet; it needs the admin token and is held in the browser's memory until saved, so for sets of several GiB use `larder export " + name + " FILE` on the appliance." }),
    msg, specBox,
    h("section", { "aria-labelledby": "h-entries" }, h("h2#h-entries", { text: "Entries" }), entriesBox));

  async function showSpec() {
    try {
      const yaml = await getText("pins/" + encodeURIComponent(name) + "/spec");
      const pre = h("pre.code#spec-text", { tabindex: "0" }, h("code", { text: yaml }));
      const copyBtn = button("Copy", () => copyText(yaml, copyBtn), "small");
      fill(specBox, h("section", { "aria-labelledby": "h-spec" },
        h("div.section-head", null, h("h2#h-spec", { text: "Seed spec" }),
          h("div.row", null, copyBtn, button("Download " + name + ".yaml", () => downloadBlob(new Blob([yaml], { type: "application/yaml" }), name + ".yaml"), "small", { id: "spec-download" }))),
        h("p.hint", { text: "Paste it on the Seed page (or run `larder seed " + name + ".yaml`) of another Larder to make the same set there." }), pre));
      pre.focus();
    } catch (e) { showMsg(msg, "Spec: " + e.message, "error"); }
  }

  every(10000, async () => {
    let d, all;
    try { [d, all] = await Promise.all([get("pins/" + encodeURIComponent(name)), get("pins").catch(() => null)]); } catch (e) {
      summary.textContent = e.status === 404 ? "There is no pin set " + name + "." : e.status === 0 ? "Cannot reach Larder." : e.message;
      return;
    }
    setInfo = all && (all.pin_sets || []).find((p) => p.name === name);
    const entries = d.entries || [];
    const cached = entries.filter((e) => e.cached !== false);
    summary.textContent = fmtCount(entries.length) + " entries, " + fmtCount(cached.length) + " cached (" + fmtBytes(cached.reduce((a, e) => a + (e.size || 0), 0)) + ")" +
      (setInfo && setInfo.exclusive_entries !== undefined ? "; " + fmtCount(setInfo.exclusive_entries) + " pinned by this set only (" + fmtBytes(setInfo.exclusive_bytes) + ")" : "") + ".";
    const shown = entries.slice(0, 1000);
    fill(entriesBox, table("Entries of " + name, ["protocol", "key", "size", "cached"], shown.map((e) => h("tr", null,
      td(e.protocol), td(h("code.ref", { text: e.key })), td(e.size !== undefined ? fmtBytes(e.size) : "–", "num"),
      td(e.cached === false ? h("span.state.state-failed", { text: "missing" }) : "yes")))),
    entries.length > shown.length ? h("p.hint", { text: "Showing 1000 of " + fmtCount(entries.length) + "." }) : null);
  });
}
