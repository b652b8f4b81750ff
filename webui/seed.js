// seed.js - the Seed page (paste or drop a lockfile / requirement file / list / seed spec, preview it with a dry
// run, start a job) and the job page (#/jobs/ID: live progress with item counts and bytes, each item's state and
// failure reason, cancel, retry failed). The daemon does all the parsing (POST /-/api/v1/jobs), so what the UI
// accepts is exactly what `larder seed` accepts.
"use strict";
import { fill, h, get, send, every, table, td, fmtBytes, fmtCount, fmtAge, fmtTime, fmtDuration, announce, msgLine, showMsg,
  stateBadge, progressBar, button, confirmDialog, NAME_PATTERN, now } from "./lib.js";

const KINDS = [
  ["detect", "detect from the content"],
  ["requirements", "pip requirements file"],
  ["package-lock", "npm package-lock.json / npm-shrinkwrap.json"],
  ["yarn-lock", "yarn.lock (v1)"],
  ["gemfile-lock", "Gemfile.lock"],
  ["images", "image list (one reference a line)"],
  ["apt", "apt package list (one a line)"],
  ["urls", "URL list (URL [sha256] a line)"],
  ["git", "git repository list (repo [ref…] a line)"],
  ["spec", "seed spec (YAML)"],
];

// the kind a file name says, when it says one (the daemon still checks the content)
function kindFromName(name) {
  const n = name.toLowerCase();
  if (n === "package-lock.json" || n === "npm-shrinkwrap.json") return "package-lock";
  if (n === "yarn.lock") return "yarn-lock";
  if (n === "gemfile.lock" || n.endsWith(".gemfile.lock")) return "gemfile-lock";
  if (/requirements.*\.(txt|in)$/.test(n) || /\.req(uirements)?\.txt$/.test(n)) return "requirements";
  if (/\.(ya?ml)$/.test(n)) return "spec";
  return "";
}

const submitted = new Map(); // job id -> the unseedable lines of its submission (shown on the job page)
let draft = { text: "", kind: "detect", pinSet: "", fileName: "" }; // kept while the tab lives (page switches)

export function render(main) {
  const ta = h("textarea#seed-input", {
    rows: "12", spellcheck: "false", autocomplete: "off", "aria-describedby": "seed-help",
    placeholder: "flask==3.0.3\nrequests==2.32.3\n…  or a package-lock.json, Gemfile.lock, yarn.lock, image list, seed spec…",
  });
  ta.value = draft.text;
  const fileInput = h("input#seed-file.sr-only", { type: "file", tabindex: "-1", "aria-hidden": "true" });
  const fileBtn = button("Open a file…", () => fileInput.click(), "", { id: "seed-file-button" });
  const fileName = h("span.muted#seed-file-name", { text: draft.fileName ? "from " + draft.fileName : "" });
  const kind = h("select#seed-kind", null, KINDS.map(([k, l]) => h("option", { value: k, text: l })));
  kind.value = draft.kind;
  const pinSet = h("input#seed-pinset", { type: "text", list: "seed-pinsets", pattern: NAME_PATTERN, autocomplete: "off", spellcheck: "false",
    placeholder: "e.g. my-build", "aria-describedby": "seed-pinset-help" });
  pinSet.value = draft.pinSet;
  const sets = h("datalist#seed-pinsets");
  const msg = msgLine("seed-msg");
  const preview = h("div#seed-preview-out", { "aria-live": "polite" });
  const previewBtn = button("Preview", () => go(true), "", { id: "seed-preview" });
  const startBtn = button("Start seeding", () => go(false), "primary", { id: "seed-start" });
  const drop = h("div.dropzone", null,
    h("label", { for: "seed-input" }, "What your build installs"),
    h("p.hint#seed-help", null, "Paste or drop a requirements.txt, package-lock.json, yarn.lock, Gemfile.lock, a list of images, apt packages, URLs or git repositories, or a seed spec. " +
      "Every package, image and file it names is fetched (unless cached) and pinned in the pin set, so the build works with the internet cut off."),
    ta,
    h("div.row", null, fileBtn, fileInput, fileName));

  const saveDraft = () => { draft.text = ta.value; draft.kind = kind.value; draft.pinSet = pinSet.value; };
  ta.addEventListener("input", () => { saveDraft(); fill(preview); });
  kind.addEventListener("change", () => { saveDraft(); fill(preview); });
  pinSet.addEventListener("input", saveDraft);

  async function takeFile(file) {
    if (!file) return;
    if (file.size > 16 * 1024 * 1024) { showMsg(msg, file.name + " is larger than 16 MiB (limits.seed_spec): use `larder seed`.", "error"); return; }
    ta.value = await file.text();
    draft.fileName = file.name;
    fileName.textContent = "from " + file.name;
    const k = kindFromName(file.name);
    if (k) kind.value = k;
    saveDraft();
    fill(preview);
    showMsg(msg, "Read " + file.name + " (" + fmtBytes(file.size) + ")" + (k ? "; kind set to " + k : "") + ".");
  }
  fileInput.addEventListener("change", () => takeFile(fileInput.files[0]));
  for (const el of [drop]) {
    el.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("dragging"); });
    el.addEventListener("dragleave", () => drop.classList.remove("dragging"));
    el.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("dragging");
      if (e.dataTransfer.files && e.dataTransfer.files.length) takeFile(e.dataTransfer.files[0]);
      else if (e.dataTransfer.getData("text/plain")) { ta.value = e.dataTransfer.getData("text/plain"); saveDraft(); }
    });
  }

  function selectLine(n) {
    const lines = ta.value.split("\n");
    if (!(n >= 1 && n <= lines.length)) return;
    let start = 0;
    for (let i = 0; i < n - 1; i++) start += lines[i].length + 1;
    ta.focus();
    ta.setSelectionRange(start, start + lines[n - 1].length);
  }

  async function go(dry) {
    const text = ta.value;
    if (!text.trim()) { showMsg(msg, "Paste or drop something to seed first.", "error"); ta.focus(); return; }
    const k = kind.value, ps = pinSet.value.trim();
    if (ps && !pinSet.checkValidity()) { showMsg(msg, "A pin set name is 1-64 characters of A-Z a-z 0-9 . _ -", "error"); pinSet.focus(); return; }
    if (!ps && k !== "spec" && k !== "detect") { showMsg(msg, "Name the pin set the " + k + " items go into.", "error"); pinSet.focus(); return; }
    const q = new URLSearchParams();
    if (ps) q.set("pin_set", ps);
    if (k !== "detect") q.set("kind", k);
    if (dry) q.set("dry_run", "1");
    previewBtn.disabled = startBtn.disabled = true;
    showMsg(msg, dry ? "Reading…" : "Starting…");
    try {
      const r = await send("POST", "jobs?" + q.toString(), text);
      if (dry) {
        showMsg(msg, "");
        showPreview(preview, r);
        announce("preview: " + (r.kind || "?") + ", " + (Array.isArray(r.items) ? r.items.length : 0) + " items");
      } else {
        if (r.unseedable && r.unseedable.length) submitted.set(r.id, r.unseedable);
        showMsg(msg, "Job " + r.id + " started.", "ok");
        announce("seed job " + r.id + " started");
        location.hash = "#/jobs/" + encodeURIComponent(r.id);
      }
    } catch (e) {
      let t = e.message;
      if (e.body && e.body.kind && !t.includes(e.body.kind)) t += " (read as " + e.body.kind + ")";
      showMsg(msg, t, "error");
      if (e.body && e.body.line) selectLine(e.body.line);
    } finally {
      previewBtn.disabled = startBtn.disabled = false;
    }
  }

  const jobsBox = h("div#jobs-list", null, h("p.muted", { text: "Loading…" }));
  main.append(
    h("h1", { text: "Seed" }),
    h("section", { "aria-labelledby": "h-new" },
      h("h2#h-new", { text: "New seed job" }),
      drop,
      h("div.form-grid", null,
        h("div.field", null, h("label", { for: "seed-kind" }, "Kind"), kind),
        h("div.field", null, h("label", { for: "seed-pinset" }, "Pin set"), pinSet, sets,
          h("p.hint#seed-pinset-help", { text: "Required, except for a seed spec (which names its own)." }))),
      h("div.row.buttons", null, previewBtn, startBtn),
      msg, preview),
    h("section", { "aria-labelledby": "h-jobs" }, h("h2#h-jobs", { text: "Recent jobs" }), jobsBox));

  get("pins").then((d) => fill(sets, ...(d.pin_sets || []).map((p) => h("option", { value: p.name })))).catch(() => {});

  let anyRunning = false;
  every(() => (anyRunning ? 2000 : 5000), async () => {
    let d;
    try { d = await get("jobs"); } catch (e) { fill(jobsBox, h("p.msg", { text: e.status === 0 ? "Cannot reach Larder." : "Jobs: " + e.message })); return; }
    const jobs = (d.jobs || []).slice(0, 50);
    anyRunning = jobs.some((j) => j.state === "running");
    if (!jobs.length) { fill(jobsBox, h("p.muted", { text: "No seed jobs yet." })); return; }
    fill(jobsBox, table("Recent seed jobs", ["job", "pin set", "kind", "state", "progress", "bytes", "started"], jobs.map(jobRow)));
  });
}

function jobRow(j) {
  const total = j.total || 0;
  return h("tr", { "data-job": j.id },
    h("th", { scope: "row" }, h("a", { href: "#/jobs/" + encodeURIComponent(j.id), text: j.id })),
    td(j.pin_set || "–"), td(j.kind || "spec"), td(stateBadge(j.state)),
    td(h("div.progress-cell", null, progressBar(j.done, j.failed, total, "job " + j.id + " progress", j.cancelled),
      h("span.progress-text", { text: `${fmtCount(j.done || 0)}/${fmtCount(total)}` + (j.failed ? `, ${fmtCount(j.failed)} failed` : "") + (j.cancelled ? `, ${fmtCount(j.cancelled)} cancelled` : "") }))),
    td(fmtBytes(j.bytes || 0), "num"), td(j.created ? fmtAge(j.created) : "–"));
}

function showPreview(box, r) {
  const items = Array.isArray(r.items) ? r.items : [];
  const un = r.unseedable || [];
  const per = {};
  for (const it of items) per[it.protocol] = (per[it.protocol] || 0) + 1;
  const parts = Object.entries(per).map(([p, n]) => fmtCount(n) + " " + p);
  const shown = items.slice(0, 300);
  fill(box, h("div.preview", { id: "seed-preview-result" },
    h("h3", { text: "Preview" }),
    h("p", null, "Read as ", h("strong#preview-kind", { text: r.kind || "?" }), " for pin set ", h("strong", { text: r.pin_set || "(none)" }), ": ",
      h("strong#preview-count", { text: fmtCount(items.length) }), " item" + (items.length === 1 ? "" : "s") + (parts.length ? " (" + parts.join(", ") + ")" : "") +
      (un.length ? "; " + fmtCount(un.length) + " line" + (un.length === 1 ? "" : "s") + " cannot be seeded" : "") + ". Nothing was started."),
    un.length ? h("div.unseedable", null, h("h4", { text: "Cannot be seeded" }),
      table("Lines that cannot be seeded", ["line", "text", "why"], un.map((u) => h("tr", null, td(String(u.line), "num"), td(h("code", { text: u.text })), td(u.why))))) : null,
    shown.length ? table("Items to seed", ["protocol", "item"], shown.map((it) => h("tr", null, td(it.protocol), td(h("code.ref", { text: it.ref }))))) : null,
    items.length > shown.length ? h("p.hint", { text: "and " + fmtCount(items.length - shown.length) + " more." }) : null));
}

// ---- one job -----------------------------------------------------------------------------------------------------
export function renderJob(main, { args }) {
  const id = args[0] || "";
  const head = h("div.job-head");
  const actions = h("div.row.buttons");
  const msg = msgLine("job-msg");
  const failedBox = h("div#job-failed");
  const filter = h("select#job-filter", null, ["all", "failed", "running", "pending", "done", "cancelled"].map((f) => h("option", { value: f, text: f })));
  const itemsBox = h("div#job-items");
  main.append(
    h("p.crumbs", null, h("a", { href: "#/seed", text: "Seed" }), " › job"),
    h("h1", null, "Seed job ", h("code", { text: id })),
    h("section", { "aria-labelledby": "h-job" }, h("h2#h-job.sr-only", { text: "Progress" }), head, actions, msg),
    failedBox,
    h("section", { "aria-labelledby": "h-items" },
      h("div.section-head", null, h("h2#h-items", { text: "Items" }), h("label.inline", { for: "job-filter" }, "Show ", filter)),
      itemsBox));

  let job = null, lastState = "";
  filter.addEventListener("change", () => drawItems());

  function drawItems() {
    if (!job) return;
    const items = job.items || [];
    const f = filter.value;
    const list = f === "all" ? items : items.filter((it) => it.state === f);
    const shown = list.slice(0, 500);
    fill(itemsBox, 
      shown.length ? table("Items of job " + id, ["state", "protocol", "item", "bytes", "reason"], shown.map((it) => h("tr", { "data-state": it.state },
        td(stateBadge(it.state)), td(it.protocol), td(h("code.ref", { text: it.ref })),
        td((it.bytes ? fmtBytes(it.bytes) : it.state === "done" ? "cached" : "–") + (it.size && it.state === "running" ? " of " + fmtBytes(it.size) : ""), "num"),
        td(it.error ? h("span.err-text", { text: it.error }) : "")))) : h("p.muted", { text: f === "all" ? "This job has no items." : "No " + f + " items." }),
      list.length > shown.length ? h("p.hint", { text: "Showing the first 500 of " + fmtCount(list.length) + " items." }) : null);
  }

  async function cancel() {
    const ok = await confirmDialog("Cancel job " + id + "?", ["Pending items will not start; downloads only this job waits for stop. What is already cached stays cached and pinned."], "Cancel the job");
    if (!ok) return;
    try {
      await send("DELETE", "jobs/" + encodeURIComponent(id));
      showMsg(msg, "Job cancelled.", "ok");
      announce("job " + id + " cancelled");
    } catch (e) { showMsg(msg, "Cancel: " + e.message, "error"); }
    poll.now();
  }
  async function retry() {
    try {
      const r = await send("POST", "jobs/" + encodeURIComponent(id) + "/retry");
      showMsg(msg, "Retrying " + fmtCount(r.items) + " item" + (r.items === 1 ? "" : "s") + ".", "ok");
      announce("retrying " + r.items + " items");
    } catch (e) { showMsg(msg, "Retry: " + e.message, "error"); }
    poll.now();
  }

  const poll = every(() => (!job || job.state === "running" ? 1500 : 10000), async () => {
    try {
      job = await get("jobs/" + encodeURIComponent(id));
    } catch (e) {
      fill(head, h("p.msg.error", { role: "alert", text: e.status === 404 ? "No job " + id + " (jobs are pruned after jobs.keep / jobs.max_age)." : e.status === 0 ? "Cannot reach Larder." : e.message }));
      return;
    }
    const items = job.items || [];
    // older daemons give the reasons only in "errors" ("ref: why")
    if (job.errors && items.some((it) => it.state === "failed" && !it.error)) {
      for (const it of items) if (it.state === "failed" && !it.error) {
        const e = job.errors.find((x) => x.startsWith(it.ref + ": "));
        if (e) it.error = e.slice(it.ref.length + 2);
      }
    }
    const total = job.total || items.length;
    const count = (st) => (job[st] !== undefined ? job[st] : items.filter((it) => it.state === st).length);
    const done = count("done"), failed = count("failed"), cancelled = count("cancelled");
    const running = items.filter((it) => it.state === "running").length;
    const pending = Math.max(0, total - done - failed - cancelled - running);
    const bytes = job.bytes !== undefined ? job.bytes : items.reduce((a, it) => a + (it.bytes || 0), 0);
    const elapsed = (job.finished || now()) - (job.created || now());
    fill(head, 
      h("div.job-summary", null,
        h("div", null, stateBadge(job.state), " ", h("span#job-state-text", { text: stateText(job.state) })),
        h("dl.facts", null,
          h("dt", { text: "Pin set" }), h("dd", null, job.pin_set ? h("a", { href: "#/pins/" + encodeURIComponent(job.pin_set), text: job.pin_set }) : "–"),
          h("dt", { text: "Kind" }), h("dd", { text: job.kind || "spec" }),
          h("dt", { text: "Started" }), h("dd", { text: job.created ? fmtTime(job.created) : "–" }),
          h("dt", { text: job.finished ? "Took" : "Running for" }), h("dd", { text: fmtDuration(Math.max(0, elapsed)) }),
          h("dt", { text: "Bytes" }), h("dd#job-bytes", { text: fmtBytes(bytes) }))),
      progressBar(done, failed, total, "items done", cancelled),
      h("p#job-counts.counts", { "aria-live": "polite" },
        `${fmtCount(done)} of ${fmtCount(total)} done`, failed ? `, ${fmtCount(failed)} failed` : "", cancelled ? `, ${fmtCount(cancelled)} cancelled` : "",
        running ? `, ${fmtCount(running)} downloading` : "", pending && job.state === "running" ? `, ${fmtCount(pending)} waiting` : ""));
    const un = submitted.get(id);
    if (un && un.length) head.append(h("p.msg.warn", { text: fmtCount(un.length) + " line(s) of the submission could not be seeded: " + un.slice(0, 3).map((u) => "line " + u.line + " (" + u.why + ")").join("; ") + (un.length > 3 ? "…" : "") }));
    fill(actions, 
      job.state === "running" ? button("Cancel job", cancel, "danger", { id: "job-cancel" }) : null,
      job.state !== "running" && (failed || cancelled || job.state === "interrupted") ? button("Retry failed items", retry, "primary", { id: "job-retry" }) : null);
    const failedItems = items.filter((it) => it.state === "failed");
    fill(failedBox, failedItems.length ? h("section.failed", { "aria-labelledby": "h-failed" },
      h("h2#h-failed", { text: "Failed items (" + fmtCount(failedItems.length) + ")" }),
      h("ul.reasons", null, failedItems.slice(0, 200).map((it) => h("li", null, h("code.ref", { text: it.ref }), ": ", h("span.err-text", { text: it.error || "failed (no reason given)" }))))) : "");
    drawItems();
    if (lastState && lastState !== job.state) announce("job " + id + " is " + job.state);
    lastState = job.state;
  });
}

function stateText(s) {
  return { running: "running", done: "done: everything is cached and pinned", failed: "finished with failures", cancelled: "cancelled",
    interrupted: "interrupted: the daemon stopped while it ran" }[s] || s;
}
