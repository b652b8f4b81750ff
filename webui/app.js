// app.js - the admin UI's shell: hash routes (#/overview, #/seed, #/jobs/ID, #/pins, #/pins/SET, #/browse,
// #/clients), the header's connection badge (driven by /-/health and by every API answer or failure) and the token
// button. Each page is a module with render(main, params); the router stops the old page's pollers first.
"use strict";
import { fill, $, h, conn, every, stopAll, pollNow, getAbs, token, onTokenChange, askToken, initTokenDialog, announce, fmtTime } from "./lib.js";
import * as overview from "./overview.js";
import * as seed from "./seed.js";
import * as pins from "./pins.js";
import * as browse from "./browse.js";
import * as clients from "./clients.js";

const pages = {
  overview: { mod: overview, title: "Overview", nav: "overview" },
  seed: { mod: seed, title: "Seed", nav: "seed" },
  jobs: { mod: seed, title: "Seed job", nav: "seed", fn: "renderJob" },
  pins: { mod: pins, title: "Pin sets", nav: "pins" },
  browse: { mod: browse, title: "Browse", nav: "browse" },
  clients: { mod: clients, title: "Clients", nav: "clients" },
};

function parseHash() {
  let raw = location.hash.replace(/^#\/?/, "");
  let query = "";
  const qi = raw.indexOf("?");
  if (qi >= 0) { query = raw.slice(qi + 1); raw = raw.slice(0, qi); }
  const parts = raw.split("/").filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch { return p; } });
  return { name: parts[0] || "overview", args: parts.slice(1), query: new URLSearchParams(query) };
}

let lastRoute = "";
function route() {
  const r = parseHash();
  const page = pages[r.name] || pages.overview;
  stopAll();
  for (const a of document.querySelectorAll("nav a[data-route]")) {
    if (a.dataset.route === page.nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const main = $("#main");
  fill(main);
  document.title = page.title + " · Larder";
  const fn = page.fn || "render";
  try {
    page.mod[fn](main, { args: r.args, query: r.query });
  } catch (e) {
    main.append(h("p.msg.error", { role: "alert", text: "This page failed to draw: " + e.message }));
    console.warn(e);
  }
  // move focus to the new page's heading for keyboard and screen reader users (not on the first load)
  const key = r.name + "/" + r.args.join("/");
  if (lastRoute && key !== lastRoute) {
    const h1 = main.querySelector("h1");
    if (h1) { h1.setAttribute("tabindex", "-1"); h1.focus({ preventScroll: false }); }
  }
  lastRoute = key;
}

// ---- connection badge -------------------------------------------------------------------------------------------
let lastGood = 0;
function paintConn(up) {
  const el = $("#conn");
  const banner = $("#banner");
  if (up === false) {
    el.className = "conn conn-down";
    el.textContent = "cannot reach Larder";
    banner.hidden = false;
    banner.textContent = "Cannot reach Larder at " + location.origin + ". Retrying every few seconds" +
      (lastGood ? "; what is shown was last updated " + fmtTime(lastGood) + "." : ".");
    document.body.classList.add("is-down");
  } else if (up === true) {
    el.className = "conn " + (conn.offline ? "conn-offline" : "conn-up");
    el.textContent = conn.offline ? "offline mode" : "online";
    el.title = conn.offline ? "offline: true in larder.yaml: only cached objects are served, no upstream is contacted"
      : "the daemon answers and may fetch from its upstreams";
    banner.hidden = true;
    document.body.classList.remove("is-down");
  }
}

function startHealth() {
  const p = every(() => (conn.up === false ? 3000 : 5000), async () => {
    try {
      const hl = await getAbs("/-/health");
      lastGood = Math.floor(Date.now() / 1000);
      conn.set(true, hl);
    } catch (e) {
      if (e.status === 0) conn.set(false);
      else conn.set(true); // it answered, with an error: it is reachable
    }
  });
  p.keep = true;
  conn.onChange((up, was) => {
    paintConn(up);
    if (up === true) lastGood = Math.floor(Date.now() / 1000);
    if (up === false && was !== false) { announce("cannot reach Larder"); p.now(); }
    if (up === true && was === false) {
      announce("Larder is reachable again");
      pollNow(); // fresh data now (not a redraw: a form being filled in stays as it is)
    }
  });
}

function paintToken() {
  const b = $("#token-button");
  const has = !!token.get();
  b.textContent = has ? "Token set" : "Admin token";
  b.classList.toggle("has-token", has);
  b.setAttribute("aria-label", has ? "Admin token: set for this tab (change or forget)" : "Admin token: not set (enter it)");
}

function init() {
  initTokenDialog();
  $("#token-button").addEventListener("click", () => askToken());
  onTokenChange(paintToken);
  paintToken();
  startHealth();
  window.addEventListener("hashchange", route);
  route();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
