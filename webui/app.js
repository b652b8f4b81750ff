// Larder admin UI: reads /-/api/v1 (open), writes with the admin token (kept in sessionStorage only).
"use strict";
const $ = (s) => document.querySelector(s);
const fmt = (n) => {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
};
const text = (s) => document.createTextNode(String(s));
function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    td.append(c instanceof Node ? c : text(c));
    tr.append(td);
  }
  return tr;
}
async function get(path) {
  const r = await fetch("/-/api/v1/" + path);
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}
function token() { return $("#token").value || sessionStorage.getItem("larder-token") || ""; }
async function write(method, path, body) {
  sessionStorage.setItem("larder-token", token());
  const r = await fetch("/-/api/v1/" + path, {
    method, body, headers: { Authorization: "Bearer " + token(), "Content-Type": "application/yaml" } });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error || "HTTP " + r.status);
  return j;
}
async function refresh() {
  try {
    const s = await get("stats");
    $("#mode").textContent = s.offline ? "offline" : "online";
    $("#mode").className = "badge" + (s.offline ? " offline" : "");
    $("#usage").textContent = fmt(s.blob_bytes) + " in " + s.blobs + " blobs" +
      (s.quota_total ? " of " + fmt(s.quota_total) + " quota" : " (no total quota)") +
      "; " + s.fetches_active + " download(s) in flight";
    const tb = $("#protocols tbody");
    tb.replaceChildren();
    for (const [name, p] of Object.entries(s.protocols)) {
      if (!p.enabled) continue;
      tb.append(row([name, p.entries, fmt(p.bytes), p.quota ? fmt(p.quota) : "-", p.hits, p.misses,
        fmt(p.bytes_served), fmt(p.bytes_upstream), p.evictions]));
    }
    const pins = await get("pins");
    const pb = $("#pins tbody");
    pb.replaceChildren();
    for (const p of pins.pin_sets) {
      const b = document.createElement("button");
      b.textContent = "unpin";
      b.onclick = async () => {
        if (!confirm("Unpin set " + p.name + "? Its files stay cached until evicted.")) return;
        try { await write("DELETE", "pins/" + encodeURIComponent(p.name)); refresh(); }
        catch (e) { alert(e.message); }
      };
      pb.append(row([p.name, p.entries, fmt(p.bytes), b]));
    }
    const jobs = await get("jobs");
    const jb = $("#jobs tbody");
    jb.replaceChildren();
    for (const j of jobs.jobs) {
      jb.append(row([j.id, j.pin_set, j.state, (j.done + j.failed) + "/" + j.total + (j.failed ? " (" + j.failed + " failed)" : "")]));
    }
    $("#health").textContent = "";
  } catch (e) {
    $("#health").textContent = "cannot reach the daemon: " + e.message;
  }
}
$("#submit").onclick = async () => {
  $("#seedmsg").className = "";
  try {
    const j = await write("POST", "jobs", $("#spec").value);
    $("#seedmsg").textContent = "job " + j.id + " started";
    refresh();
  } catch (e) {
    $("#seedmsg").className = "error";
    $("#seedmsg").textContent = e.message;
  }
};
refresh();
setInterval(refresh, 3000);
