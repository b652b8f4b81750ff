// overview.js - is the cache doing its job: hit ratio and bytes saved (total and per protocol), traffic over the
// last hour / day / month (/history), disk use against quotas, downloads in flight, and upstream health.
"use strict";
import { fill, h, get, getAbs, every, table, td, fmtBytes, fmtCount, fmtPct, fmtAge, fmtTime, fmtDuration, meter, conn } from "./lib.js";
import { timeChart, legend } from "./chart.js";

const RANGES = {
  "1h": { label: "Last hour", range: "1h", step: "1m", poll: 15000 },
  "24h": { label: "Last day", range: "24h", step: "15m", poll: 60000 },
  "30d": { label: "Last month", range: "30d", step: "1d", poll: 300000 },
};
let chosenRange = sessionStorage.getItem("larder-range") || "24h";
let chosenSeries = "total";

function hitRatio(p) {
  if (!p) return null;
  if (p.hit_ratio !== undefined) return p.hit_ratio;
  const hits = (p.hits || 0) + (p.stale || 0), all = hits + (p.misses || 0);
  return all ? hits / all : null;
}

function card(label, value, sub, id) {
  return h("div.card", { id }, h("div.card-label", { text: label }), h("div.card-value", { text: value }), sub ? h("div.card-sub", { text: sub }) : null);
}

export function render(main) {
  const status = h("p.lede", { role: "status", "aria-live": "polite" }, "Loading…");
  const cards = h("div.cards", { "aria-label": "Totals" });
  const chartBox = h("div.charts");
  const chartMsg = h("p.msg", { role: "status" });
  const seriesSel = h("select#series-select", { on: { change: () => { chosenSeries = seriesSel.value; drawCharts(); } } },
    h("option", { value: "total", text: "all protocols" }));
  const rangeBtns = Object.entries(RANGES).map(([k, r]) => h("button.seg", {
    type: "button", "aria-pressed": String(k === chosenRange), "data-range": k,
    on: { click: () => { chosenRange = k; sessionStorage.setItem("larder-range", k); for (const b of rangeBtns) b.setAttribute("aria-pressed", String(b.dataset.range === k)); hist.ms = RANGES[k].poll; hist.now(); } },
  }, r.label));
  const protoBox = h("div");
  const diskBox = h("div");
  const upBox = h("div");
  main.append(
    h("h1", { text: "Overview" }), status,
    h("section", { "aria-labelledby": "h-totals" }, h("h2#h-totals", { text: "Totals" }), cards),
    h("section", { "aria-labelledby": "h-traffic" },
      h("div.section-head", null, h("h2#h-traffic", { text: "Traffic" }),
        h("div.controls", null,
          h("div.segmented", { role: "group", "aria-label": "Time range" }, rangeBtns),
          h("label.inline", { for: "series-select" }, "Protocol ", seriesSel))),
      chartMsg, chartBox),
    h("section", { "aria-labelledby": "h-protocols" }, h("h2#h-protocols", { text: "Protocols" }), protoBox),
    h("section", { "aria-labelledby": "h-disk" }, h("h2#h-disk", { text: "Disk and quotas" }), diskBox),
    h("section", { "aria-labelledby": "h-upstreams" }, h("h2#h-upstreams", { text: "Upstreams" }), upBox),
  );

  let history = null;
  function drawCharts() {
    if (!history) return;
    const S = history.series && history.series[chosenSeries];
    fill(chartBox);
    if (!S) { chartMsg.textContent = "No data for " + chosenSeries + " in this range."; return; }
    const times = history.times || [];
    const width = Math.min(chartBox.clientWidth || 600, 1100);
    const z = (a) => a || times.map(() => 0);
    const hitsStale = times.map((_, i) => (z(S.hits)[i] || 0) + (z(S.stale)[i] || 0));
    const reqSeries = [
      { name: "hits (incl. stale)", cls: "series-hit", values: hitsStale },
      { name: "misses", cls: "series-miss", values: z(S.misses) },
      { name: "errors", cls: "series-err", values: z(S.errors) },
    ];
    const byteSeries = [
      { name: "served to clients", cls: "series-served", values: z(S.bytes_served) },
      { name: "from upstream for clients", cls: "series-upstream", values: z(S.bytes_upstream) },
      { name: "from upstream for seeding", cls: "series-seed", values: z(S.bytes_seed) },
    ];
    const sum = (a) => a.reduce((x, y) => x + (y || 0), 0);
    const reqTotal = sum(z(S.requests).length ? z(S.requests) : hitsStale.map((v, i) => v + (z(S.misses)[i] || 0)));
    const rangeLabel = RANGES[chosenRange].label.toLowerCase();
    chartMsg.textContent = reqTotal ? "" : "No requests " + rangeLabel + (chosenSeries === "total" ? "" : " for " + chosenSeries) + ".";
    chartBox.append(
      h("figure.chart-fig", { id: "chart-requests" },
        h("figcaption", null, "Requests per " + history.stepLabel),
        timeChart({ times, series: reqSeries, kind: "bars", yfmt: (v) => fmtCount(Math.round(v)), title: "Requests " + rangeLabel, width,
          summary: fmtCount(reqTotal) + " requests, " + fmtCount(sum(hitsStale)) + " from the cache, " + fmtCount(sum(z(S.misses))) + " misses, " + fmtCount(sum(z(S.errors))) + " errors" }),
        legend(reqSeries)),
      h("figure.chart-fig", { id: "chart-bytes" },
        h("figcaption", null, "Bytes per " + history.stepLabel),
        timeChart({ times, series: byteSeries, kind: "lines", yfmt: fmtBytes, title: "Bytes " + rangeLabel, width,
          summary: fmtBytes(sum(z(S.bytes_served))) + " served, " + fmtBytes(sum(z(S.bytes_upstream))) + " from upstream for clients, " + fmtBytes(sum(z(S.bytes_seed))) + " for seeding" }),
        legend(byteSeries)));
  }
  let resizeT;
  const onResize = () => { clearTimeout(resizeT); resizeT = setTimeout(drawCharts, 150); };
  window.addEventListener("resize", onResize);
  const stopResize = new MutationObserver(() => { if (!main.contains(chartBox)) { window.removeEventListener("resize", onResize); stopResize.disconnect(); } });
  stopResize.observe(main, { childList: true });

  const hist = every(RANGES[chosenRange].poll, async () => {
    const r = RANGES[chosenRange];
    try {
      const d = await get(`history?range=${r.range}&step=${r.step}`);
      d.stepLabel = { "1m": "minute", "5m": "5 minutes", "15m": "15 minutes", "1h": "hour", "6h": "6 hours", "1d": "day" }[r.step] || r.step;
      history = d;
      const names = Object.keys(d.series || {}).filter((n) => n !== "total");
      const have = [...seriesSel.options].map((o) => o.value);
      for (const n of names) if (!have.includes(n)) seriesSel.append(h("option", { value: n, text: n }));
      drawCharts();
    } catch (e) {
      history = null;
      fill(chartBox);
      chartMsg.textContent = e.status === 404 ? "This daemon keeps no traffic history (GET /-/api/v1/history is missing)." : "History: " + e.message;
    }
  });

  every(3000, async () => {
    let st, hl;
    try {
      [st, hl] = await Promise.all([get("stats"), getAbs("/-/health").catch(() => null)]);
    } catch (e) {
      status.textContent = e.status === 0 ? "Cannot reach Larder: the figures below may be out of date." : "Stats: " + e.message;
      return;
    }
    const tot = st.total || sumProtocols(st.protocols);
    const mode = st.offline ? "offline mode (only cached objects are served)" : "online";
    status.textContent = `Larder ${hl ? hl.version : conn.version} is ${mode}` + (hl ? `, up ${fmtDuration(hl.uptime)}` : "") +
      (st.counters_since ? `; counters since ${fmtTime(st.counters_since)}` : "") + ".";
    fill(cards, 
      card("Hit ratio", fmtPct(hitRatio(tot)), fmtCount(tot.requests !== undefined ? tot.requests : (tot.hits || 0) + (tot.misses || 0)) + " requests", "card-hit-ratio"),
      card("Bytes saved", tot.bytes_saved !== undefined ? fmtBytes(tot.bytes_saved) : "–", "served from the cache", "card-saved"),
      card("Served to clients", fmtBytes(tot.bytes_served), fmtBytes(tot.bytes_upstream) + " fetched for them", "card-served"),
      card("Seeding", tot.bytes_seed !== undefined ? fmtBytes(tot.bytes_seed) : "–", "fetched by seed jobs", "card-seed"),
      card("Downloads in flight", fmtCount(st.fetches_active), "upstream fetches now", "card-inflight"),
      card("Stored", fmtBytes(st.blob_bytes), fmtCount(st.blobs) + " blobs" + (st.quota_total ? " of " + fmtBytes(st.quota_total) : ""), "card-stored"),
    );
    const rows = [];
    const names = Object.keys(st.protocols);
    for (const n of names) {
      const p = st.protocols[n];
      if (!p.enabled) continue;
      rows.push(h("tr", null,
        h("th", { scope: "row", text: n }),
        td(fmtPct(hitRatio(p)), "num"), td(p.bytes_saved !== undefined ? fmtBytes(p.bytes_saved) : "–", "num"),
        td(fmtBytes(p.bytes_served), "num"), td(fmtBytes(p.bytes_upstream), "num"),
        td(p.bytes_seed !== undefined ? fmtBytes(p.bytes_seed) : "–", "num"),
        td(fmtCount(p.requests !== undefined ? p.requests : (p.hits || 0) + (p.misses || 0)), "num"),
        td(fmtCount(p.errors), "num"), td(fmtCount(p.entries), "num")));
    }
    fill(protoBox, rows.length ? table("Protocols", ["protocol", "hit ratio", "saved", "served", "from upstream", "seeded", "requests", "errors", "entries"], rows)
      : h("p", { text: "No protocol is enabled in larder.yaml." }));
    const drows = [];
    drows.push(h("tr", null, h("th", { scope: "row", text: "all" }), td(fmtBytes(st.blob_bytes), "num"),
      td(st.quota_total ? fmtBytes(st.quota_total) : "none", "num"),
      td(meter(st.blob_bytes, st.quota_total, st.quota_total ? fmtPct(st.blob_bytes / st.quota_total) + " of the total quota" : "no total quota")),
      td(fmtCount(names.reduce((a, n) => a + (st.protocols[n].evictions || 0), 0)), "num")));
    for (const n of names) {
      const p = st.protocols[n];
      if (!p.enabled) continue;
      drows.push(h("tr", null, h("th", { scope: "row", text: n }), td(fmtBytes(p.bytes), "num"),
        td(p.quota ? fmtBytes(p.quota) : "–", "num"),
        td(p.quota ? meter(p.bytes, p.quota, fmtPct(p.bytes / p.quota) + " of the " + n + " quota") : h("span.muted", { text: "total quota only" })),
        td(fmtCount(p.evictions), "num")));
    }
    fill(diskBox, 
      table("Disk use and quotas", ["", "stored", "quota", "use", "evictions"], drows),
      h("p.hint", { text: "Blobs shared between protocols are stored once" + (st.external_bytes ? "; git mirrors add " + fmtBytes(st.external_bytes) : "") +
        (st.min_free ? "; eviction also keeps " + fmtBytes(st.min_free) + " of the disk free (quota.min_free)." : ".") }));
  });

  every(10000, async () => {
    try {
      const d = await get("upstreams");
      const rows = (d.upstreams || []).map((u) => {
        const bad = u.held_off || (u.consecutive_failures || 0) > 0;
        const health = u.held_off ? "held off" + (u.held_off_until ? " until " + fmtTime(u.held_off_until) : "")
          : bad ? "failing" : u.last_success ? "ok" : "not used yet";
        return h("tr", null,
          h("th", { scope: "row" }, u.protocol + (u.name && u.name !== u.protocol ? " · " + u.name : "")),
          td(h("span.health.health-" + (u.held_off ? "held" : bad ? "bad" : u.last_success ? "ok" : "idle"), { text: health })),
          td(h("span.url.nowrap", { text: u.url || "" })),
          td(fmtAge(u.last_success)),
          td(u.last_failure ? fmtAge(u.last_failure) : "never"),
          td(u.last_error ? h("span.err-text.wide", { text: u.last_error }) : "–"),
          td(fmtCount(u.consecutive_failures || 0), "num"));
      });
      fill(upBox, rows.length ? table("Upstreams", ["upstream", "health", "URL", "last success", "last failure", "last error", "failures in a row"], rows)
        : h("p", { text: "No upstream is configured." }));
    } catch (e) {
      fill(upBox, h("p.msg", { text: e.status === 404 ? "This daemon does not report upstream health (GET /-/api/v1/upstreams is missing)." : "Upstreams: " + e.message }));
    }
  });
}

function sumProtocols(protos) {
  const t = { hits: 0, misses: 0, bytes_served: 0, bytes_upstream: 0 };
  for (const p of Object.values(protos || {})) for (const k of Object.keys(t)) t[k] += p[k] || 0;
  return t;
}
