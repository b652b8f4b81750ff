// ui.mjs - the admin web UI in a real browser (Debian's chromium driven by playwright-core from tests/tools),
// against the real daemon and real upstreams that tests/integration/test_ui.sh starts. Nothing of Larder's API is
// mocked: every click goes to the daemon.
//
// Environment (test_ui.sh sets it):
//   LARDER_URL, ADMIN_TOKEN      the daemon and its admin token
//   UI_OUT                       screenshots (PNG) and results.json are written here
//   UI_CTL                       a directory for asking test_ui.sh to stop / start the daemon (file "request"
//                                with "stop" or "start"; the script answers with "ack-stop" / "ack-start")
//   UI_REQUIREMENTS, UI_PACKAGE_LOCK, UI_GEMFILE_LOCK   real lockfiles of the local upstreams' packages
//   UI_ORIGIN_ROOT, UI_ORIGIN_PORT  the files upstream's document root (a missing file is created there for "retry")
//                                and port (its /slow/ path keeps a job running)
//   CHROMIUM                     the browser (default /usr/bin/chromium)
// Prints "ok - CHECK" / "FAIL - CHECK: why" per check and a closing "N passed, M failed"; exit status 1 when any
// check failed. Checks go on after a failure (each starts from a fresh page) so one run shows every problem.
import fs from "node:fs";
import path from "node:path";
import { chromium } from "../tools/node_modules/playwright-core/index.mjs";

const URL0 = process.env.LARDER_URL;
const TOKEN = process.env.ADMIN_TOKEN;
const OUT = process.env.UI_OUT;
const CTL = process.env.UI_CTL;
const UI = URL0 + "/-/ui/";
if (!URL0 || !TOKEN || !OUT || !CTL) { console.error("ui.mjs: set LARDER_URL, ADMIN_TOKEN, UI_OUT and UI_CTL"); process.exit(2); }
fs.mkdirSync(OUT, { recursive: true });

const results = [];
let page, ctx;
const consoleErrors = [];
const pageErrors = [];

function assert(cond, msg) { if (!cond) throw new Error(msg); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60);

async function shot(name) {
  try { await page.screenshot({ path: path.join(OUT, name + ".png"), fullPage: true }); } catch { /* the page may be gone */ }
}

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true, ms: Date.now() - t0 });
    console.log("ok - " + name);
  } catch (e) {
    const why = String(e && e.message || e).split("\n").slice(0, 3).join(" | ");
    results.push({ name, ok: false, why, ms: Date.now() - t0 });
    console.log("FAIL - " + name + ": " + why);
    await shot("FAILED-" + slug(name));
  }
}

// a fresh document load of a route (about:blank first, so a hash-only change still loads the page anew)
async function open(route) {
  await page.goto("about:blank");
  await page.goto(UI + "#/" + route, { waitUntil: "load" });
}

async function textOf(sel) { return (await page.locator(sel).first().textContent({ timeout: 10000 })) || ""; }

async function waitText(sel, re, timeout = 15000, what = sel) {
  const deadline = Date.now() + timeout;
  let last = "";
  while (Date.now() < deadline) {
    last = await page.locator(sel).first().textContent({ timeout: 1000 }).catch(() => "");
    if (re.test(last || "")) return last;
    await sleep(250);
  }
  throw new Error(`${what}: expected /${re.source}/ within ${timeout / 1000} s, got ${JSON.stringify((last || "").slice(0, 300))}`);
}

async function noHorizontalOverflow(what) {
  const o = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, bw: document.body.scrollWidth, w: window.innerWidth }));
  assert(o.sw <= o.w && o.bw <= o.w, `${what}: the page is ${Math.max(o.sw, o.bw)} px wide in a ${o.w} px viewport (horizontal overflow)`);
}

function ctl(req, timeout = 60000) {
  const ack = path.join(CTL, "ack-" + req);
  try { fs.unlinkSync(ack); } catch { /* none yet */ }
  fs.writeFileSync(path.join(CTL, "request.tmp"), req + "\n");
  fs.renameSync(path.join(CTL, "request.tmp"), path.join(CTL, "request"));
  return (async () => {
    const deadline = Date.now() + timeout;
    while (Date.now() < deadline) {
      if (fs.existsSync(ack)) return;
      await sleep(200);
    }
    throw new Error("test_ui.sh did not answer the request to " + req + " the daemon");
  })();
}

// ---- the pages and what says each has loaded -------------------------------------------------------------------
const PAGES = [
  ["overview", async () => { await page.waitForSelector("#card-hit-ratio"); await page.waitForSelector("#h-upstreams"); }],
  ["seed", async () => { await page.waitForSelector("#seed-input"); await waitText("#jobs-list", /^(?!Loading)/); }],
  ["pins", async () => { await waitText("#pins-list", /^(?!Loading)/); await page.waitForSelector("#record-state, #record-box .msg"); }],
  ["browse", async () => { await waitText("#browse-count", /./); }],
  ["clients", async () => { await page.waitForSelector("#snip-pip-conf"); }],
];

async function loadsClean(route, ready, label) {
  consoleErrors.length = 0;
  pageErrors.length = 0;
  await open(route);
  await ready();
  await sleep(1500); // let the page's first polls answer
  assert(pageErrors.length === 0, "uncaught errors: " + pageErrors.join(" | "));
  assert(consoleErrors.length === 0, "console errors: " + consoleErrors.slice(0, 5).join(" | "));
  if (await page.locator(".msg.error").count()) throw new Error(label + " shows an error: " + (await textOf(".msg.error")));
}

// ---- seeding through the UI -------------------------------------------------------------------------------------
async function jobState() {
  return ((await page.locator(".job-summary .state").first().textContent({ timeout: 2000 }).catch(() => "")) || "").trim();
}
async function waitJob(states, timeout) {
  const deadline = Date.now() + timeout;
  let st = "";
  while (Date.now() < deadline) {
    st = await jobState();
    if (states.includes(st)) return st;
    await sleep(500);
  }
  throw new Error(`job ${page.url().split("#/jobs/")[1]} still "${st}" after ${timeout / 1000} s (wanted ${states.join("/")}); counts: ${await textOf("#job-counts").catch(() => "?")}`);
}

async function pasteAndPreview(text, pinSet, kind = "detect") {
  await open("seed");
  await page.fill("#seed-input", text);
  await page.selectOption("#seed-kind", kind);
  await page.fill("#seed-pinset", pinSet);
  await page.click("#seed-preview");
  await page.waitForSelector("#seed-preview-result, #seed-msg.error", { timeout: 60000 });
  if (await page.locator("#seed-msg.error").count()) throw new Error("preview refused: " + (await textOf("#seed-msg")));
  return { kind: (await textOf("#preview-kind")).trim(), count: parseInt((await textOf("#preview-count")).replace(/[^0-9]/g, ""), 10) };
}

async function startJob() {
  await page.click("#seed-start");
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline && !page.url().includes("#/jobs/")) {
    if (await page.locator("#seed-msg.error").count()) throw new Error("start refused: " + (await textOf("#seed-msg")));
    await sleep(200);
  }
  assert(page.url().includes("#/jobs/"), "no job page after Start (message: " + (await textOf("#seed-msg").catch(() => "")) + ")");
  return decodeURIComponent(page.url().split("#/jobs/")[1]);
}

async function seedFile(file, pinSet, wantKind) {
  const text = fs.readFileSync(file, "utf8");
  const pv = await pasteAndPreview(text, pinSet);
  assert(pv.kind === wantKind, `detected kind ${pv.kind}, expected ${wantKind}`);
  assert(pv.count > 0, "the preview lists no items");
  const id = await startJob();
  const st = await waitJob(["done", "failed", "cancelled", "interrupted"], 240000);
  const counts = await textOf("#job-counts");
  assert(st === "done", `job ${id} ended ${st}: ${counts}; failed: ${(await textOf("#job-failed").catch(() => "")).slice(0, 400)}`);
  assert(/(\d+) of \1 done/.test(counts.replace(/,/g, "")), "counts say not everything is done: " + counts);
  return id;
}

// ---- main -------------------------------------------------------------------------------------------------------
const userDir = fs.mkdtempSync(path.join(OUT, ".chromium-profile-"));
const browserArgs = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"];
ctx = await chromium.launchPersistentContext(userDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args: browserArgs,
  viewport: { width: 1280, height: 900 }, acceptDownloads: true,
});
await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: URL0 });
page = ctx.pages()[0] || (await ctx.newPage());
page.setDefaultTimeout(20000);
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text() + (m.location() && m.location().url ? " (" + m.location().url + ")" : "")); });
page.on("pageerror", (e) => pageErrors.push(e.message));
page.on("response", (r) => { if (r.status() >= 400) consoleErrors.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`); });
const allPageErrors = [];
page.on("pageerror", (e) => allPageErrors.push(e.message));

try {
  await check("the UI is served with a Content-Security-Policy and nosniff", async () => {
    const r = await page.goto(UI);
    const hd = r.headers();
    const csp = hd["content-security-policy"] || "";
    assert(/default-src 'self'/.test(csp) && /frame-ancestors 'none'/.test(csp), "CSP header: " + JSON.stringify(csp));
    assert(hd["x-content-type-options"] === "nosniff", "X-Content-Type-Options: " + hd["x-content-type-options"]);
  });

  for (const [route, ready] of PAGES) {
    await check(`${route} page loads without console errors`, () => loadsClean(route, ready, route));
  }

  await check("keyboard: skip link, nav links and Escape on a dialog", async () => {
    await open("overview");
    await page.waitForSelector("#card-hit-ratio");
    await page.keyboard.press("Tab");
    assert((await page.evaluate(() => document.activeElement.textContent)) === "Skip to content", "the first Tab stop is not the skip link");
    let guard = 0;
    while ((await page.evaluate(() => document.activeElement.getAttribute("data-route"))) !== "seed" && guard++ < 10) await page.keyboard.press("Tab");
    assert(guard < 10, "Tab never reached the Seed link");
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert(outline !== "none", "the focused link has no visible outline");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#seed-input");
    assert(page.url().endsWith("#/seed"), "Enter on the Seed link did not open it: " + page.url());
    assert((await page.evaluate(() => document.activeElement.tagName)) === "H1", "focus did not move to the new page's heading");
    await page.focus("#token-button");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#token-dialog[open]");
    assert((await page.evaluate(() => document.activeElement.id)) === "token-input", "the token dialog did not focus its input");
    await page.keyboard.press("Escape");
    await page.waitForFunction(() => !document.querySelector("#token-dialog").open, null, { timeout: 5000 });
    assert((await page.evaluate(() => document.activeElement.id)) === "token-button", "focus did not return to the token button");
  });

  await check("token: asked on the first write, asked again after a 401, kept for the tab", async () => {
    await open("seed");
    await page.evaluate(() => sessionStorage.removeItem("larder-token"));
    await page.fill("#seed-input", "pin_set: ui-token\nfiles:\n  - origin/x/a.bin\n");
    await page.selectOption("#seed-kind", "spec");
    await page.click("#seed-preview");
    await page.waitForSelector("#token-dialog[open]");
    await page.fill("#token-input", "not-the-token");
    await page.keyboard.press("Enter");
    await waitText("#token-why", /refused/, 15000, "the token dialog after a wrong token");
    assert(await page.locator("#token-dialog[open]").count(), "the dialog is not open again after a 401");
    await page.fill("#token-input", TOKEN);
    await page.click("#token-form button[type=submit]");
    await page.waitForSelector("#seed-preview-result, #seed-msg.error", { timeout: 30000 });
    assert((await page.evaluate(() => sessionStorage.getItem("larder-token"))) === TOKEN, "the token is not in sessionStorage");
    assert((await page.evaluate(() => document.cookie)) === "", "a cookie was set");
    assert(/Token set/.test(await textOf("#token-button")), "the header does not say the token is set");
    consoleErrors.length = 0; // the refused request is logged by the browser
  });

  await check("seed: a pasted requirements.txt runs to done", async () => {
    await seedFile(process.env.UI_REQUIREMENTS, "ui-pip", "requirements");
    await shot("job-requirements");
  });
  await check("seed: a pasted package-lock.json runs to done", () => seedFile(process.env.UI_PACKAGE_LOCK, "ui-npm", "package-lock"));
  await check("seed: a pasted Gemfile.lock runs to done", () => seedFile(process.env.UI_GEMFILE_LOCK, "ui-gems", "gemfile-lock"));

  await check("seed: opening a file fills the text and takes the kind from its name", async () => {
    await open("seed");
    await page.fill("#seed-input", "");
    await page.setInputFiles("#seed-file", process.env.UI_PACKAGE_LOCK);
    await waitText("#seed-msg", /Read package-lock\.json .*kind set to package-lock/, 10000, "the file's message");
    assert((await page.inputValue("#seed-kind")) === "package-lock", "kind: " + (await page.inputValue("#seed-kind")));
    assert((await page.inputValue("#seed-input")).includes('"lockfileVersion"'), "the text area does not hold the lockfile");
    await page.fill("#seed-pinset", "ui-npm");
    await page.click("#seed-preview");
    await page.waitForSelector("#seed-preview-result, #seed-msg.error", { timeout: 30000 });
    assert((await textOf("#preview-kind")).trim() === "package-lock", "preview kind: " + (await textOf("#preview-kind")));
    await page.fill("#seed-input", "");
    await page.selectOption("#seed-kind", "detect");
  });

  let brokenJob = "";
  await check("seed: a job with a missing item shows the item's reason", async () => {
    await open("seed");
    await page.fill("#seed-input", "pin_set: ui-broken\nfiles:\n  - origin/x/a.bin\n  - origin/x/missing.bin\n");
    await page.selectOption("#seed-kind", "spec");
    await page.fill("#seed-pinset", "");
    brokenJob = await startJob();
    const st = await waitJob(["done", "failed", "cancelled", "interrupted"], 60000);
    assert(st === "failed", "the job ended " + st);
    const failed = await textOf("#job-failed");
    assert(/missing\.bin/.test(failed), "the failed list does not name missing.bin: " + failed);
    assert(/404|not found/i.test(failed), "the failed list gives no reason: " + failed);
    assert(/1 failed/.test(await textOf("#job-counts")), "counts: " + (await textOf("#job-counts")));
    const row = page.locator('#job-items tr[data-state="failed"]');
    assert((await row.count()) === 1 && /404|not found/i.test(await row.first().textContent()), "the items table has no failed row with its reason");
    await shot("job-failed");
  });

  await check("seed: retry runs the failed item again (now there) to done", async () => {
    assert(brokenJob, "no failed job to retry");
    fs.mkdirSync(path.join(process.env.UI_ORIGIN_ROOT, "x"), { recursive: true });
    fs.writeFileSync(path.join(process.env.UI_ORIGIN_ROOT, "x", "missing.bin"), "here now\n".repeat(1000));
    await open("jobs/" + encodeURIComponent(brokenJob));
    await page.waitForSelector("#job-retry");
    await page.click("#job-retry");
    await waitText("#job-msg", /Retrying 1 item/, 15000, "the retry's message");
    const st = await waitJob(["done"], 30000); // (the page showed "failed" before the retry: wait for done)
    assert(st === "done", "after retry the job is " + st + ": " + (await textOf("#job-counts")));
    assert((await page.locator("#job-failed li").count()) === 0, "failed items are still listed");
  });

  let slowJob = "", interruptedJob = "";
  await check("seed: cancel stops a running job", async () => {
    await open("seed");
    const spec = "pin_set: ui-slow\nfiles:\n" + [1, 2, 3, 4].map((i) => `  - origin/slow/s${i}.bin\n`).join("");
    await page.fill("#seed-input", spec);
    await page.selectOption("#seed-kind", "spec");
    slowJob = await startJob();
    await waitJob(["running"], 20000);
    await waitText("#job-bytes", /[1-9]/, 20000, "bytes of the downloads in flight");
    await page.click("#job-cancel");
    await page.waitForSelector("#confirm-dialog[open]");
    await page.click("#confirm-ok");
    const st = await waitJob(["cancelled", "done", "failed"], 30000);
    assert(st === "cancelled", "after cancel the job is " + st);
    assert(/cancelled/.test(await textOf("#job-counts")), "counts do not say cancelled: " + (await textOf("#job-counts")));
    await shot("job-cancelled");
    await open("seed");
    await page.waitForSelector(`#jobs-list tr[data-job="${slowJob}"]`);
    assert(/cancelled/.test(await textOf(`#jobs-list tr[data-job="${slowJob}"]`)), "the jobs list does not show it cancelled");
  });

  await check("seed: retry right after a cancel runs the cancelled items again", async () => {
    assert(slowJob, "no cancelled job");
    await open("jobs/" + encodeURIComponent(slowJob));
    await page.waitForSelector("#job-retry");
    await page.click("#job-retry");
    let st = await waitJob(["running", "done", "failed"], 20000);
    assert(st === "running", "after retry the job is " + st);
    await sleep(3000); // the items are downloading again (the slow upstream takes a minute per file)
    st = await jobState();
    assert(st === "running", "3 s after the retry the job is " + st + ": " + (await textOf("#job-failed").catch(() => "")).slice(0, 300));
    await page.click("#job-cancel");
    await page.waitForSelector("#confirm-dialog[open]");
    await page.click("#confirm-ok");
    st = await waitJob(["cancelled", "done", "failed"], 30000);
    assert(st === "cancelled", "cancelled again: " + st);
  });

  await check("overview: the traffic charts draw the traffic made before", async () => {
    const deadline = Date.now() + 60000;
    let bars = 0, lines = 0, max = "0";
    while (Date.now() < deadline) {
      await open("overview");
      await page.click('button[data-range="1h"]');
      await page.waitForSelector("#chart-requests svg, #h-traffic ~ .msg", { timeout: 10000 }).catch(() => {});
      await sleep(800);
      bars = await page.locator("#chart-requests svg rect.bar").count();
      lines = await page.locator("#chart-bytes svg polyline").count();
      max = (await page.locator("#chart-requests svg").getAttribute("data-max", { timeout: 1000 }).catch(() => "0")) || "0";
      if (bars > 0 && lines > 0 && Number(max) > 0) break;
      await sleep(4000);
    }
    assert(bars > 0 && Number(max) > 0, `the requests chart has ${bars} bars (max ${max})`);
    assert(lines > 0, "the bytes chart has no line");
    const ratio = await textOf("#card-hit-ratio .card-value");
    assert(/%/.test(ratio), "hit ratio card: " + ratio);
    await page.click('button[data-range="30d"]');
    await page.waitForFunction(() => document.querySelector("#chart-requests svg") && document.querySelectorAll("#chart-requests svg rect.bar").length > 0, null, { timeout: 15000 });
    await page.click('button[data-range="1h"]');
    await shot("overview-charts");
  });

  await check("browse: search, page with More, pin one entry, delete one", async () => {
    await open("browse?limit=2");
    await page.selectOption("#browse-protocol", "files");
    await page.fill("#browse-q", ".bin");
    await page.locator("#browse-q").press("Enter");
    await page.waitForSelector("#browse-more:not([hidden])", { timeout: 10000 });
    const n1 = await page.locator(".entries tbody tr").count();
    await page.click("#browse-more");
    await page.waitForFunction((n) => document.querySelectorAll(".entries tbody tr").length > n, 2, { timeout: 10000 });
    assert(n1 >= 2, "first page shows " + n1 + " rows");
    await open("browse");
    await page.selectOption("#browse-protocol", "files");
    await page.fill("#browse-q", "b.bin");
    await page.locator("#browse-q").press("Enter");
    const row = page.locator(".entries tbody tr", { hasText: "b.bin" }).first();
    await row.waitFor();
    const cells = await row.locator("td").allTextContents();
    assert(/B$/.test(cells[2].trim()) && /ago/.test(cells[3]), "size / age cells: " + JSON.stringify(cells));
    await row.getByRole("button", { name: /^Pin/ }).click();
    await page.waitForSelector("#prompt-dialog[open]");
    await page.fill("#prompt-input", "ui-browse");
    await page.keyboard.press("Enter");
    await waitText("#browse-msg", /Pinned .*ui-browse/, 10000, "pin message");
    await waitText(".entries tbody tr:has-text('b.bin')", /ui-browse/, 10000, "the pinned column");
    await page.fill("#browse-q", "d.bin");
    await page.locator("#browse-q").press("Enter");
    const drow = page.locator(".entries tbody tr", { hasText: "d.bin" }).first();
    await drow.waitFor();
    await drow.getByRole("button", { name: /^Delete/ }).click();
    await page.waitForSelector("#confirm-dialog[open]");
    await page.click("#confirm-ok");
    await waitText("#browse-msg", /Deleted/, 10000, "delete message");
    await page.locator("#browse-q").press("Enter");
    await waitText("#browse-count", /Nothing cached matches/, 10000, "search after the delete");
  });

  await check("pin sets: list, open, export the spec, download the bundle", async () => {
    await open("pins");
    await page.waitForSelector('#pins-list tr[data-set="ui-broken"]');
    await page.click('#pins-list tr[data-set="ui-broken"] th a');
    await page.waitForSelector("#set-entries table");
    assert(/a\.bin/.test(await textOf("#set-entries")), "the set's entries do not list a.bin");
    await page.click("#set-spec");
    await waitText("#spec-text", /pin_set: "?ui-broken"?/, 10000, "the exported spec");
    const [dl] = await Promise.all([page.waitForEvent("download", { timeout: 60000 }), page.click("#set-bundle")]);
    const p = await dl.path();
    const size = fs.statSync(p).size;
    assert(size > 10000, "the bundle has " + size + " bytes");
    await waitText("#set-msg", /saved/, 10000, "bundle message");
    await shot("pin-set");
  });

  await check("pin sets: record a build, then stop", async () => {
    await open("pins");
    await page.waitForSelector("#record-start");
    await page.fill("#record-set", "ui-rec");
    await page.click("#record-start");
    await waitText("#record-state", /Recording into ui-rec/, 10000, "record state");
    const r = await fetch(URL0 + "/files/origin/x/e.bin");
    assert(r.ok, "GET e.bin: " + r.status);
    await r.arrayBuffer();
    await waitText("#record-state", /[1-9]\d* recorded/, 15000, "recorded count");
    await shot("pins-recording");
    await page.click("#record-stop");
    await waitText("#record-state", /Not recording/, 10000, "record state after stop");
    await page.waitForSelector('#pins-list tr[data-set="ui-rec"]', { timeout: 10000 });
  });

  await check("pin sets: unpin asks first and says what becomes evictable", async () => {
    await open("pins");
    await page.waitForSelector('#pins-list tr[data-set="ui-rec"]');
    await page.locator('#pins-list tr[data-set="ui-rec"]').getByRole("button", { name: /Unpin/ }).click();
    await page.waitForSelector("#confirm-dialog[open]");
    const body = await textOf("#confirm-body");
    assert(/evictable/.test(body) && /1 entry/.test(body), "the confirmation says: " + body);
    await shot("unpin-confirm");
    await page.click("#confirm-cancel");
    assert(await page.locator('#pins-list tr[data-set="ui-rec"]').count(), "Cancel unpinned anyway");
    await page.locator('#pins-list tr[data-set="ui-rec"]').getByRole("button", { name: /Unpin/ }).click();
    await page.click("#confirm-ok");
    await waitText("#pins-msg", /Unpinned ui-rec/, 10000, "unpin message");
    await page.waitForFunction(() => !document.querySelector('#pins-list tr[data-set="ui-rec"]'), null, { timeout: 10000 });
  });

  await check("clients: snippets name this daemon's URL and mounts, and copy", async () => {
    await open("clients");
    await page.waitForSelector("#snip-pip-conf");
    const want = {
      "#snip-pip-conf": `index-url = ${URL0}/pypi/simple/`,
      "#snip-pip-env": `PIP_INDEX_URL=${URL0}/pypi/simple/`,
      "#snip-uv-env": `UV_DEFAULT_INDEX=${URL0}/pypi/simple/`,
      "#snip-npmrc": `registry=${URL0}/npm/`,
      "#snip-yarnrc": `registry "${URL0}/npm/"`,
      "#snip-yarnrc-yml": `npmRegistryServer: "${URL0}/npm/"`,
      "#snip-apt-proxy": `Acquire::http::Proxy "${URL0}";`,
      "#snip-daemon-json": `"registry-mirrors": [\n    "${URL0}"`,
      "#snip-hosts-toml": `[host."${URL0}"]`,
      "#snip-buildkitd": `mirrors = ["${new URL(URL0).host}"]`,
      "#snip-registries-conf": `location = "${new URL(URL0).host}"`,
      "#snip-bundler": `mirror.https://rubygems.org ${URL0}/gems`,
      "#snip-git-insteadof": `url."${URL0}/git/`,
      "#snip-tutor": "tutor plugins enable larder",
    };
    for (const [sel, s] of Object.entries(want)) {
      const t = await textOf(sel);
      assert(t.includes(s), `${sel} lacks ${JSON.stringify(s)}: ${JSON.stringify(t.slice(0, 200))}`);
    }
    const snippets = await page.locator(".snippet").count();
    assert((await page.locator(".snippet button.copy").count()) === snippets, "a snippet without a copy button");
    await page.click('button[data-snippet="npmrc"]');
    await waitText('button[data-snippet="npmrc"]', /Copied/, 5000, "copy button");
    const clip = await page.evaluate(() => navigator.clipboard.readText());
    assert(clip === `registry=${URL0}/npm/\n`, "clipboard: " + JSON.stringify(clip));
  });

  // screenshots of every page with data, desktop and phone; at 390 px nothing may scroll the page sideways
  const extra = [["pins/ui-broken", async () => { await page.waitForSelector("#set-entries table"); }]];
  if (brokenJob) extra.push(["jobs/" + encodeURIComponent(brokenJob), async () => { await page.waitForSelector("#job-items table"); }]);
  for (const [w, hgt, tag] of [[1280, 900, "desktop"], [390, 844, "390px"]]) {
    for (const [route, ready] of [...PAGES, ...extra]) {
      const name = route.split("/")[0] === "jobs" ? "job" : route.includes("/") ? "pin-set" : route;
      await check(`${name} page at ${tag}: no console errors${w === 390 ? ", no horizontal overflow" : ""}`, async () => {
        await page.setViewportSize({ width: w, height: hgt });
        await loadsClean(route, ready, name);
        if (w === 390) await noHorizontalOverflow(name);
        await shot(`${name}-${tag}`);
      });
    }
  }
  await page.setViewportSize({ width: 1280, height: 900 });

  await check("the daemon stopped: 'cannot reach Larder', never 'online'; back: online again", async () => {
    // a job still running when the daemon stops comes back "interrupted", with its retry offered
    const r = await fetch(URL0 + "/-/api/v1/jobs?pin_set=ui-interrupted&kind=urls", {
      method: "POST", headers: { Authorization: "Bearer " + TOKEN }, body: `http://${new URL(URL0).hostname}:${process.env.UI_ORIGIN_PORT}/slow/s1.bin\n`,
    });
    const started = await r.json();
    assert(r.status === 202 && started.id, "a slow job to interrupt: HTTP " + r.status + " " + JSON.stringify(started));
    interruptedJob = started.id;
    await open("overview");
    await waitText("#conn", /^online$/, 10000, "badge before the stop");
    await ctl("stop");
    const t = await waitText("#conn", /cannot reach Larder/, 15000, "badge with the daemon stopped");
    assert(!/online/.test(t), "badge: " + t);
    assert(await page.locator("#banner:not([hidden])").count(), "no banner");
    await sleep(4000); // polls go on failing: the badge must not flip back
    assert((await textOf("#conn")).trim() === "cannot reach Larder", "badge changed while the daemon was down: " + (await textOf("#conn")));
    await page.setViewportSize({ width: 390, height: 844 });
    await shot("unreachable-390px");
    await page.setViewportSize({ width: 1280, height: 900 });
    await shot("unreachable-desktop");
    await ctl("start");
    await waitText("#conn", /^online$/, 20000, "badge after the restart");
    assert(await page.locator("#banner[hidden]").count(), "the banner stayed");
    await waitText("#card-stored .card-value", /B$/, 10000, "stats after the restart");
  });

  await check("a job the stopped daemon interrupted says so and offers a retry", async () => {
    assert(interruptedJob, "no job was started before the stop");
    await open("jobs/" + encodeURIComponent(interruptedJob));
    const st = await waitJob(["interrupted", "failed", "done", "cancelled"], 15000);
    assert(st === "interrupted", "the job is " + st);
    await page.waitForSelector("#job-retry");
    assert(/daemon stopped/.test(await textOf("#job-failed")), "no reason for the interrupted item: " + (await textOf("#job-failed")));
    await shot("job-interrupted");
  });

  await check("no uncaught script error on any page during the whole run", async () => {
    assert(allPageErrors.length === 0, allPageErrors.slice(0, 5).join(" | "));
  });
} finally {
  await ctx.close().catch(() => {});
  fs.rmSync(userDir, { recursive: true, force: true });
}

const passed = results.filter((r) => r.ok).length, failed = results.length - passed;
fs.writeFileSync(path.join(OUT, "results.json"), JSON.stringify(results, null, 2) + "\n");
console.log(`ui: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
