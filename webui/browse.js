// browse.js - search what is cached (GET /-/api/v1/entries?protocol=&q=&cursor=&limit=) with size, age, hits and
// pin state; "More" follows next_cursor; delete one entry or pin it into a set (both authenticated).
"use strict";
import { fill, h, get, send, table, td, fmtBytes, fmtCount, fmtAge, announce, msgLine, showMsg, button, confirmDialog, promptDialog,
  debounce, NAME_PATTERN } from "./lib.js";

const PAGE = 100; // #/browse?limit=N asks for smaller pages
let remembered = { protocol: "", q: "" };

export function render(main, { query }) {
  const proto = h("select#browse-protocol", null, h("option", { value: "", text: "all protocols" }));
  const q = h("input#browse-q", { type: "search", autocomplete: "off", spellcheck: "false", placeholder: "name, key or URL contains…" });
  const msg = msgLine("browse-msg");
  const count = h("p.muted#browse-count", { role: "status", "aria-live": "polite" });
  const tbody = h("tbody");
  const tableWrap = h("div.table-wrap", { tabindex: "0", role: "region", "aria-label": "Cached entries" },
    h("table.entries", null, h("caption.sr-only", { text: "Cached entries" }),
      h("thead", null, h("tr", null, ["entry", "protocol", "size", "fetched", "last used", "hits", "pinned", ""].map((x) => h("th", { scope: "col", text: x })))),
      tbody));
  const more = button("More", () => load(false), "", { id: "browse-more", hidden: true });
  proto.value = query.get("protocol") || remembered.protocol;
  q.value = query.get("q") || remembered.q;
  main.append(h("h1", { text: "Browse" }),
    h("section", { "aria-labelledby": "h-search" }, h("h2#h-search.sr-only", { text: "Search" }),
      h("form.search-row", { role: "search", on: { submit: (e) => { e.preventDefault(); typed.cancel(); showMsg(msg, ""); load(true); } } },
        h("div.field", null, h("label", { for: "browse-protocol" }, "Protocol"), proto),
        h("div.field.grow", null, h("label", { for: "browse-q" }, "Search"), q),
        h("div.field", null, h("span.label-spacer", { "aria-hidden": "true", text: " " }), h("button.primary", { type: "submit", text: "Search" })))),
    h("section", { "aria-labelledby": "h-results" }, h("h2#h-results.sr-only", { text: "Results" }), msg, count, tableWrap, more));

  get("stats").then((st) => {
    for (const [n, p] of Object.entries(st.protocols || {})) if (p.enabled) proto.append(h("option", { value: n, text: n }));
    proto.value = query.get("protocol") || remembered.protocol;
  }).catch(() => {});
  let sets = [];
  get("pins").then((d) => { sets = (d.pin_sets || []).map((p) => p.name); }).catch(() => {});

  let cursor = null, shown = 0, gen = 0;
  async function load(fresh) {
    const my = ++gen;
    if (fresh) { cursor = null; shown = 0; }
    remembered = { protocol: proto.value, q: q.value };
    const p = new URLSearchParams();
    if (proto.value) p.set("protocol", proto.value);
    if (q.value.trim()) p.set("q", q.value.trim());
    if (cursor) p.set("cursor", cursor);
    p.set("limit", String(Math.min(1000, Math.max(1, parseInt(query.get("limit"), 10) || PAGE))));
    more.disabled = true;
    let d;
    try { d = await get("entries?" + p.toString()); } catch (e) {
      if (my !== gen) return;
      showMsg(msg, e.status === 0 ? "Cannot reach Larder." : "Search: " + e.message, "error");
      more.disabled = false;
      return;
    }
    if (my !== gen) return; // a newer search started meanwhile
    if (fresh) fill(tbody);
    for (const e of d.entries || []) tbody.append(row(e));
    shown += (d.entries || []).length;
    cursor = d.next_cursor || null;
    more.hidden = !cursor;
    more.disabled = false;
    count.textContent = shown ? fmtCount(shown) + " entr" + (shown === 1 ? "y" : "ies") + " shown" + (cursor ? "; more below" : "") + "."
      : "Nothing cached" + (q.value.trim() ? " matches “" + q.value.trim() + "”" : "") + (proto.value ? " for " + proto.value : "") + ".";
  }

  function row(e) {
    const label = e.key;
    const tr = h("tr", { "data-key": e.key },
      td(h("div.entry-name", null, h("code.ref", { text: e.key }), e.url && e.url !== e.key ? h("div.url.muted", { text: e.url }) : null)),
      td(e.protocol), td(fmtBytes(e.size), "num"), td(fmtAge(e.fetched_at), "nowrap"), td(fmtAge(e.last_access), "nowrap"),
      td(e.hits !== undefined ? fmtCount(e.hits) : "–", "num"),
      td(e.pinned ? h("span.pinned", { text: (e.pin_sets && e.pin_sets.length ? e.pin_sets.join(", ") : "yes") }) : h("span.muted", { text: "no" })),
      td(h("div.row-actions", null,
        button("Pin", () => pinOne(e), "small", { "aria-label": "Pin " + label + " into a set" }),
        button("Delete", () => del(e, tr), "danger small", { "aria-label": "Delete " + label + " from the cache" }))));
    return tr;
  }

  async function del(e, tr) {
    const ok = await confirmDialog("Delete this entry?", [h("p", null, h("code.ref", { text: e.key })),
      "It is removed from the cache (" + fmtBytes(e.size) + "); the next request fetches it from the upstream again" + (e.pinned ? ". It is pinned: unpin its set first." : ".")], "Delete");
    if (!ok) return;
    try {
      await send("DELETE", "entries?protocol=" + encodeURIComponent(e.protocol) + "&key=" + encodeURIComponent(e.key));
      tr.remove();
      shown--;
      showMsg(msg, "Deleted " + e.key + ".", "ok");
      announce("entry deleted");
    } catch (err) { showMsg(msg, "Delete: " + err.message, "error"); }
  }

  async function pinOne(e) {
    const set = await promptDialog("Pin into a set", "Pin set", { options: sets, pattern: NAME_PATTERN, help: "An existing set or a new name (A-Z a-z 0-9 . _ -). Pinned entries are never evicted." });
    if (!set) return;
    try {
      await send("POST", "pins/" + encodeURIComponent(set) + "/entries", JSON.stringify({ protocol: e.protocol, key: e.key }), { contentType: "application/json" });
      showMsg(msg, "Pinned " + e.key + " into " + set + ".", "ok");
      announce("pinned into " + set);
      if (!sets.includes(set)) sets.push(set);
      load(true);
    } catch (err) { showMsg(msg, "Pin: " + err.message, "error"); }
  }

  const search = () => { showMsg(msg, ""); load(true); };
  const typed = debounce(search, 350);
  q.addEventListener("input", typed);
  proto.addEventListener("change", search);
  load(true);
}
