// The liquidation screen: the live feed (every liquidation kept, the newest shown), one
// tree per cascade (rows = generations, edges = parent → child) with its mark path and
// summary, and the liquidation-price ladder (polled: market.liquidationLadder). It
// builds its panels into the element it is given (the web app's #screen-liquidations,
// or a section of the classroom's instructor console).
import { $, h, svg, clear, setText, RowPool, fmtTime, num } from "./dom.js";
import { markDirty, noteSeq } from "./sched.js";

const FEED_ROWS = 100; // shown; all are kept (up to KEEP) and counted
const KEEP = 200000;
const NODES_PER_GEN = 40;
const MAX_EDGES = 600;
const LADDER_BUCKETS = 15;

function closedBy(d) {
  const parts = [];
  if (num(d.filledQty)) parts.push(`book ${d.filledQty}`);
  if (num(d.fundTakeoverQty)) parts.push(`fund ${d.fundTakeoverQty}`);
  if (num(d.adlQty)) parts.push(`ADL ${d.adlQty}`);
  return parts.join(" · ") || "–";
}

function panels() {
  const th = (...names) => h("tr", {}, ...names.map((n) => h("th", { text: n })));
  return h("div", { class: "grid-liq" },
    h("div", { class: "panel feed-panel" },
      h("h2", {}, "Liquidations ", h("small", { id: "feed-count", text: "none yet" }),
        h("span", { class: "fund" }, "Insurance fund ", h("b", { id: "liq-fund", text: "–" }))),
      h("table", { class: "feed" },
        h("thead", {}, th("Time", "Cascade", "Gen", "Side", "Size", "Trigger mark", "Bankruptcy", "Closed by", "Fund Δ")),
        h("tbody", { id: "feed" }))),
    h("div", { class: "panel" },
      h("h2", {}, "Liquidation-price ladder ", h("small", { id: "ladder-info" })),
      h("div", { class: "ladder-head" }, h("span", { text: "Longs that liquidate here" }), h("span", { text: "Liquidation price" }), h("span", { text: "Shorts that liquidate here" })),
      h("div", { id: "ladder", class: "ladder" })),
    h("div", { class: "panel cascade-panel" },
      h("h2", {}, "Cascade ", h("select", { id: "cascade-pick", "aria-label": "Cascade" }), " ", h("small", { id: "cascade-info" })),
      h("div", { id: "cascade-summary", class: "summary" }),
      h("div", { id: "cascade-tree", class: "tree" }),
      h("div", { id: "cascade-path", class: "chart small" })));
}

export class LiquidationScreen {
  constructor(app, root) {
    this.app = app;
    this.root = root;
    root.append(panels());
    this.pool = new RowPool(this.$("#feed"), 9, FEED_ROWS);
    this.pick = this.$("#cascade-pick");
    this.pick.addEventListener("change", () => {
      this.follow = this.pick.value === "latest";
      this.selected = this.follow ? this.latest : Number(this.pick.value);
      markDirty("tree", () => this.renderTree());
    });
    this.onLiq = (d) => this.liquidation(d);
    this.onCascade = (d) => this.cascadeEnded(d);
    this.gaps = 0; // reconnections: the feed is live, what passed meanwhile is not in it
    this.reset();
    setInterval(() => this.pollLadder(), 1000);
  }

  $(sel) {
    return $(sel, this.root);
  }

  reset() {
    this.feed = [];
    this.total = 0;
    this.cascades = new Map(); // id → {id, nodes: Map, gens: [[node]], summary, marks}
    this.latest = null;
    this.selected = null;
    this.follow = true;
    this.ladder = null;
    markDirty("pick", () => this.renderPick());
  }

  streams(sym) {
    return { [`liquidations.${sym}`]: this.onLiq, cascades: this.onCascade };
  }

  cascade(id) {
    let c = this.cascades.get(id);
    if (!c) {
      c = { id, nodes: new Map(), gens: [], summary: null, marks: [] };
      this.cascades.set(id, c);
      this.latest = id;
      if (this.follow) this.selected = id;
      markDirty("pick", () => this.renderPick());
    }
    return c;
  }

  liquidation(d) {
    this.total++;
    this.feed.push(d);
    if (this.feed.length > KEEP) this.feed.splice(0, this.feed.length - KEEP);
    const c = this.cascade(d.cascadeId);
    const node = { id: d.liquidationId, parent: d.parentId, gen: d.generation, side: d.side, qty: d.qty, mark: d.triggerMark };
    c.nodes.set(node.id, node);
    (c.gens[d.generation] ??= []).push(node);
    if (c.marks.length === 0 || c.marks[c.marks.length - 1] !== d.triggerMark) c.marks.push(d.triggerMark);
    noteSeq(d.seq);
    markDirty("feed", () => this.renderFeed());
    if (d.cascadeId === this.selected) markDirty("tree", () => this.renderTree());
  }

  cascadeEnded(d) {
    if (d.symbol !== this.app.symbol) return;
    const c = this.cascade(d.cascadeId);
    c.summary = d;
    noteSeq(d.seq);
    markDirty("pick", () => this.renderPick());
    if (d.cascadeId === this.selected) markDirty("tree", () => this.renderTree());
  }

  /** The insurance fund's balance (from the ticker's poll), beside the feed's Fund Δ. */
  fund(text) {
    setText(this.$("#liq-fund"), text);
  }

  reconnected() {
    this.gaps++;
    markDirty("feed", () => this.renderFeed());
  }

  renderFeed() {
    const items = [];
    for (let i = this.feed.length - 1; i >= 0 && items.length < FEED_ROWS; i--) {
      const d = this.feed[i];
      items.push([fmtTime(d.ts), d.cascadeId, d.generation, d.side, d.qty, d.triggerMark, d.bankruptcyPrice, closedBy(d), d.insuranceDelta]);
    }
    this.pool.fill(items, (i) => this.feed[this.feed.length - 1 - i].side);
    const gaps = this.gaps ? ` · reconnected ${this.gaps}×: none received while disconnected` : "";
    setText(this.$("#feed-count"), `${this.total} received${this.total > FEED_ROWS ? `, newest ${FEED_ROWS} shown` : ""}${gaps}`);
  }

  renderPick() {
    const sel = this.pick;
    clear(sel);
    sel.append(h("option", { value: "latest", text: "follow the latest" }));
    const ids = [...this.cascades.keys()].sort((a, b) => b - a).slice(0, 50);
    for (const id of ids) {
      const c = this.cascades.get(id);
      const n = c.summary ? c.summary.liquidations : c.nodes.size;
      sel.append(h("option", { value: id, text: `#${id}: ${n} liquidations${c.summary ? "" : " (running)"}` }));
    }
    sel.value = this.follow ? "latest" : String(this.selected);
  }

  renderTree() {
    const c = this.cascades.get(this.selected);
    const tree = this.$("#cascade-tree");
    const summary = this.$("#cascade-summary");
    if (!c) {
      clear(tree);
      clear(summary);
      tree.append(h("p", { class: "empty", text: "No cascade yet: liquidations will appear here as a tree." }));
      return;
    }
    this.renderSummary(c, summary);
    // the nodes on screen change only while a generation has fewer than NODES_PER_GEN:
    // after that only the counts change, and only they are patched
    const key = `${c.id}|${c.gens.map((g) => Math.min(g.length, NODES_PER_GEN)).join(",")}`;
    if (key === this.treeKey) {
      c.gens.forEach((nodes, g) => {
        const row = this.genRows[g];
        setText(row.label, `gen ${g} (${nodes.length})`);
        setText(row.more, nodes.length > NODES_PER_GEN ? `+${nodes.length - NODES_PER_GEN} more` : "");
      });
    } else {
      this.treeKey = key;
      this.buildTree(c, tree);
    }
    // plotly redraws cost ~100+ ms: the mark path is drawn once the cascade has ended
    if (c.summary && this.pathKey !== c.id) this.renderPath(c);
  }

  renderSummary(c, summary) {
    const s = c.summary;
    const path = s ? s.pricePath : c.marks;
    const items = [
      ["Cascade", `#${c.id}${s ? "" : " (running)"}`],
      ["Liquidations", s ? s.liquidations : c.nodes.size],
      ["Generations", s ? s.generations : c.gens.length],
      ["Volume", s ? s.volume : "…"],
      ["Mark path", path.length ? `${path[0]} → ${path[path.length - 1]}` : "–"],
      ["Insurance fund", s ? `${s.insuranceBefore} → ${s.insuranceAfter}` : "…"],
      ["ADL", s ? s.adlCount : "…"],
    ];
    if (summary.children.length !== items.length) {
      clear(summary);
      for (const [k] of items) summary.append(h("div", {}, h("span", { class: "k", text: k }), h("span", { class: "v" })));
    }
    items.forEach(([, v], i) => setText(summary.children[i].lastChild, v));
    setText(this.$("#cascade-info"), s && s.truncated ? "summary truncated" : "");
  }

  buildTree(c, tree) {
    clear(tree);
    this.genRows = [];
    const shown = new Map(); // liquidation id → node element
    c.gens.forEach((nodes, g) => {
      const label = h("span", { class: "gen-label", text: `gen ${g} (${nodes.length})` });
      const more = h("span", { class: "more", text: nodes.length > NODES_PER_GEN ? `+${nodes.length - NODES_PER_GEN} more` : "" });
      const row = h("div", { class: "gen" }, label);
      for (const n of nodes.slice(0, NODES_PER_GEN)) {
        const el = h("span", { class: `node ${n.side}`, title: `liquidation ${n.id}: ${n.side} ${n.qty} at mark ${n.mark}`, text: `${n.side === "LONG" ? "L" : "S"} ${n.qty} @${n.mark}` });
        el.dataset.id = n.id;
        row.append(el);
        shown.set(n.id, el);
      }
      row.append(more);
      tree.append(row);
      this.genRows.push({ label, more });
    });
    // edges parent → child between the nodes on screen, once laid out
    const edges = svg("svg", { class: "edges", width: tree.scrollWidth, height: tree.scrollHeight });
    const base = tree.getBoundingClientRect();
    let count = 0;
    for (const [id, el] of shown) {
      const n = c.nodes.get(id);
      const pel = n.parent != null ? shown.get(n.parent) : null;
      if (!pel || count >= MAX_EDGES) continue;
      const a = pel.getBoundingClientRect();
      const b = el.getBoundingClientRect();
      edges.append(svg("line", { x1: a.left + a.width / 2 - base.left + tree.scrollLeft, y1: a.bottom - base.top,
        x2: b.left + b.width / 2 - base.left + tree.scrollLeft, y2: b.top - base.top }));
      count++;
    }
    tree.prepend(edges);
    tree.dataset.generations = String(c.gens.length);
    tree.dataset.edges = String(count);
  }

  renderPath(c) {
    const Plotly = window.Plotly;
    const el = this.$("#cascade-path");
    if (!Plotly || !this.app.visible("liquidations")) return;
    this.pathKey = c.id;
    const path = (c.summary ? c.summary.pricePath : c.marks).map(num);
    Plotly.react(el, [{ type: "scatter", mode: "lines+markers", x: path.map((_, i) => i), y: path,
      line: { color: "#f0b90b" }, marker: { size: 4 }, name: "trigger mark" }], {
      paper_bgcolor: "#171d24", plot_bgcolor: "#171d24", font: { color: "#e6edf3", size: 10 },
      // x is the index of each trigger mark: whole numbers only, and one mark sits alone in the middle
      margin: { l: 60, r: 10, t: 6, b: 24 }, xaxis: { title: { text: "trigger marks in order" }, gridcolor: "#26303b",
        tickformat: "d", dtick: Math.max(1, Math.ceil(path.length / 10)), ...(path.length < 2 ? { range: [-0.5, 0.5] } : {}) },
      yaxis: { gridcolor: "#26303b", tickformat: ",.1f" }, showlegend: false,
    }, { displayModeBar: false, responsive: true });
  }

  async pollLadder() {
    const app = this.app;
    if (!app.symbol || app.conn.state !== "open" || !app.visible("liquidations")) return;
    try {
      this.ladder = await app.conn.call("market.liquidationLadder", { symbol: app.symbol, buckets: LADDER_BUCKETS });
    } catch {
      return;
    }
    markDirty("ladder", () => this.renderLadder());
  }

  renderLadder() {
    const L = this.ladder;
    const box = this.$("#ladder");
    clear(box);
    if (!L) return;
    setText(this.$("#ladder-info"), `bucket ${L.bucketSize} · longs ${L.longQty} (${L.longPositions}) · shorts ${L.shortQty} (${L.shortPositions})`);
    const max = Math.max(1e-12, ...L.longs.map((b) => num(b.qty)), ...L.shorts.map((b) => num(b.qty)));
    // the bucket holding the mark is on both sides: shorts liquidate above the mark, longs
    // below it, so each side's half is labelled from the mark, not with the whole bucket
    const mark = num(L.mark);
    const range = (bucket, side) => {
      if (side === "s" && num(bucket.low) < mark) return `${L.mark}–${bucket.high}`;
      if (side === "l" && num(bucket.high) > mark) return `${bucket.low}–${L.mark}`;
      return `${bucket.low}–${bucket.high}`;
    };
    const row = (bucket, side) => {
      const q = num(bucket.qty);
      const bar = h("div", { class: "bar" });
      bar.style.width = `${((q / max) * 100).toFixed(1)}%`;
      const cell = h("div", { class: side }, bar, h("span", { class: "q", text: q ? `${bucket.qty} (${bucket.positions})` : "" }));
      const empty = h("div", { class: side === "l" ? "s" : "l" });
      const price = h("div", { class: "p", text: range(bucket, side) });
      const r = side === "l" ? h("div", { class: "row" }, cell, price, empty) : h("div", { class: "row" }, empty, price, cell);
      if (q) r.dataset.positions = String(bucket.positions);
      return r;
    };
    // what lies beyond the window (the side's total minus its buckets): open interest far
    // from the mark is still shown, so the header's totals never point at empty rows
    const beyond = (buckets, total, count, side) => {
      const n = count - buckets.reduce((a, b) => a + b.positions, 0);
      if (n <= 0 || !buckets.length) return null;
      const places = (total.split(".")[1] ?? "").length;
      const q = (num(total) - buckets.reduce((a, b) => a + num(b.qty), 0)).toFixed(places);
      const edge = side === "l" ? `below ${buckets[buckets.length - 1].low}` : `above ${buckets[buckets.length - 1].high}`;
      const cell = h("div", { class: side }, h("span", { class: "q", text: `${q} (${n})` }));
      const price = h("div", { class: "p", text: edge });
      return side === "l" ? h("div", { class: "row beyond" }, cell, price, h("div", { class: "s" }))
        : h("div", { class: "row beyond" }, h("div", { class: "l" }), price, cell);
    };
    const above = beyond(L.shorts, L.shortQty, L.shortPositions, "s");
    if (above) box.append(above);
    for (const b of [...L.shorts].reverse()) box.append(row(b, "s"));
    box.append(h("div", { class: "row mark" }, h("div"), h("div", { class: "p", text: `mark ${L.mark}` }), h("div")));
    for (const b of L.longs) box.append(row(b, "l"));
    const below = beyond(L.longs, L.longQty, L.longPositions, "l");
    if (below) box.append(below);
  }
}
