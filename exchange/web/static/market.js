// The market screen: order book with depth bars (patched in place; a gap in bookSeq
// resyncs from a fresh snapshot), the trades tape, and the price chart. It builds its
// panels into the element it is given (the web app's #screen-market, or a section of
// the classroom's instructor console).
import { $, h, setText, RowPool, fmtTime, num } from "./dom.js";
import { applyBook } from "./bookcopy.js";
import { markDirty, noteSeq } from "./sched.js";

const DEPTH = 15;
const TAPE = 60;
const CHART_POINTS = 3000;
const CHART_GAP_MS = 500; // the chart is the heaviest view: at most 2 redraws a second

function bookRows(container) {
  const rows = [];
  for (let i = 0; i < DEPTH; i++) {
    const bar = h("div", { class: "bar" });
    const px = h("span", { class: "px" });
    const qty = h("span");
    const tot = h("span");
    const row = h("div", { class: "row" }, bar, px, qty, tot);
    container.append(row);
    rows.push({ bar, px, qty, tot, row, width: "" });
  }
  return rows;
}

function panels() {
  const th = (...names) => h("tr", {}, ...names.map((n) => h("th", { text: n })));
  return h("div", { class: "grid-market" },
    h("div", { class: "panel" },
      h("h2", {}, "Order book ", h("small", { id: "book-seq" })),
      h("div", { class: "book-head" }, h("span", { text: "Price" }), h("span", { text: "Size" }), h("span", { text: "Total" })),
      h("div", { id: "book-asks", class: "book asks" }),
      h("div", { id: "book-mid", class: "book-mid", text: "–" }),
      h("div", { id: "book-bids", class: "book bids" })),
    h("div", { class: "panel" },
      h("h2", {}, "Price ", h("small", { text: "mark, index, last; ✕ = liquidation" })),
      h("div", { id: "price-chart", class: "chart" })),
    h("div", { class: "panel" },
      h("h2", { text: "Trades" }),
      h("table", { class: "tape" }, h("thead", {}, th("Time", "Price", "Size", "Taker")), h("tbody", { id: "trades" }))));
}

export class MarketScreen {
  constructor(app, root) {
    this.app = app;
    this.root = root;
    root.append(panels());
    this.askRows = bookRows(this.$("#book-asks"));
    this.bidRows = bookRows(this.$("#book-bids"));
    this.tape = new RowPool(this.$("#trades"), 4, TAPE);
    this.chartAt = 0;
    this.chartRevision = 0;
    this.reset();
    const conn = app.conn;
    this.onBook = (d) => this.book(d);
    this.onTrade = (d) => this.trade(d);
    this.onMark = (d) => this.mark(d);
    this.onLiq = (d) => this.liquidation(d);
  }

  $(sel) {
    return $(sel, this.root);
  }

  reset() {
    this.bids = new Map();
    this.asks = new Map();
    this.bookSeq = 0;
    this.resyncing = false;
    this.resyncs = 0;
    this.trades = [];
    this.series = { t: [], mark: [], index: [], last: [], lt: [], ly: [], ltext: [] };
    this.lastPrice = null;
  }

  streams(sym) {
    return { [`book.${sym}`]: this.onBook, [`trades.${sym}`]: this.onTrade, [`mark.${sym}`]: this.onMark,
      [`liquidations.${sym}`]: this.onLiq };
  }

  book(d) {
    if (!applyBook(this, d, () => this.app.conn.resubscribe(`book.${this.app.symbol}`).catch(() => {}))) return;
    if (d.type !== "snapshot") noteSeq(d.seq);
    markDirty("book", () => this.renderBook());
  }

  trade(d) {
    this.trades.unshift(d);
    if (this.trades.length > TAPE) this.trades.length = TAPE;
    this.lastPrice = d.price;
    noteSeq(d.seq);
    markDirty("tape", () => this.renderTape());
  }

  mark(d) {
    const s = this.series;
    s.t.push(new Date(Number(BigInt(d.ts) / 1000000n)));
    s.mark.push(num(d.mark));
    s.index.push(num(d.index));
    s.last.push(num(d.last) || null);
    if (s.t.length > CHART_POINTS) for (const k of ["t", "mark", "index", "last"]) s[k].splice(0, s[k].length - CHART_POINTS);
    if (d.seq) noteSeq(d.seq);
    this.app.tickerMark(d);
    this.chartDirty();
  }

  liquidation(d) {
    const s = this.series;
    s.lt.push(new Date(Number(BigInt(d.ts) / 1000000n)));
    s.ly.push(num(d.triggerMark));
    s.ltext.push(`${d.side} ${d.qty} (cascade ${d.cascadeId}, gen ${d.generation})`);
    if (s.lt.length > CHART_POINTS) for (const k of ["lt", "ly", "ltext"]) s[k].splice(0, s[k].length - CHART_POINTS);
    this.chartDirty();
  }

  chartDirty() {
    const wait = this.chartAt + CHART_GAP_MS - performance.now();
    if (wait <= 0) markDirty("chart", () => this.renderChart());
    else if (!this.chartTimer) {
      this.chartTimer = setTimeout(() => {
        this.chartTimer = null;
        markDirty("chart", () => this.renderChart());
      }, wait);
    }
  }

  renderBook() {
    const asks = [...this.asks].map(([p, q]) => [num(p), p, q]).sort((a, b) => a[0] - b[0]).slice(0, DEPTH);
    const bids = [...this.bids].map(([p, q]) => [num(p), p, q]).sort((a, b) => b[0] - a[0]).slice(0, DEPTH);
    const cum = (side) => {
      let t = 0;
      return side.map(([, p, q]) => [p, q, (t += num(q))]);
    };
    const a = cum(asks);
    const b = cum(bids);
    const max = Math.max(a.length ? a[a.length - 1][2] : 0, b.length ? b[b.length - 1][2] : 0) || 1;
    const paint = (rows, levels, reversed) => {
      for (let i = 0; i < DEPTH; i++) {
        const r = rows[reversed ? DEPTH - 1 - i : i];
        const lv = levels[i];
        if (!lv) {
          setText(r.px, "");
          setText(r.qty, "");
          setText(r.tot, "");
          if (r.width !== "0%") r.bar.style.width = r.width = "0%";
          continue;
        }
        setText(r.px, lv[0]);
        setText(r.qty, lv[1]);
        setText(r.tot, lv[2].toFixed(3));
        const w = `${((lv[2] / max) * 100).toFixed(1)}%`;
        if (w !== r.width) r.bar.style.width = r.width = w;
      }
    };
    paint(this.askRows, a, true);
    paint(this.bidRows, b, false);
    const spread = asks.length && bids.length ? (asks[0][0] - bids[0][0]).toFixed(2) : "–";
    setText(this.$("#book-mid"), `${this.lastPrice ?? "–"}   spread ${spread}`);
    setText(this.$("#book-seq"), `bookSeq ${this.bookSeq}${this.resyncs ? ` · ${this.resyncs} resyncs` : ""}`);
  }

  renderTape() {
    this.tape.fill(
      this.trades.map((t) => [fmtTime(t.ts), t.price, t.qty, t.liquidation ? `${t.takerSide} (liq)` : t.takerSide]),
      (i) => `${this.trades[i].takerSide}${this.trades[i].liquidation ? " liq" : ""}`,
    );
  }

  renderChart() {
    this.chartAt = performance.now();
    const Plotly = window.Plotly;
    if (!Plotly) return;
    const s = this.series;
    const el = this.$("#price-chart");
    if (!this.app.visible("market")) return; // hidden: drawn when shown (no forced layout)
    // markers too while there are few points, so a quiet market still shows them
    const mode = s.t.length < 200 ? "lines+markers" : "lines";
    const line = (name, y, color, dash) => ({ type: "scatter", mode, name, x: s.t, y, marker: { size: 4, color },
      line: { color, width: name === "mark" ? 2 : 1, dash }, connectgaps: true });
    Plotly.react(el, [
      line("mark", s.mark, "#f0b90b"),
      line("index", s.index, "#4c9aff", "dot"),
      line("last", s.last, "#8b98a5"),
      { type: "scatter", mode: "markers", name: "liquidation", x: s.lt, y: s.ly, text: s.ltext,
        hoverinfo: "text+y", marker: { symbol: "x", size: 7, color: "#f6465d" } },
    ], {
      paper_bgcolor: "#171d24", plot_bgcolor: "#171d24", font: { color: "#e6edf3", size: 11 },
      margin: { l: 60, r: 10, t: 10, b: 30 }, legend: { orientation: "h", y: 1.08 },
      xaxis: { gridcolor: "#26303b" }, yaxis: { gridcolor: "#26303b", tickformat: ",.1f" },
      uirevision: "keep",
      // the series arrays are extended in place: Plotly.react redraws them only when
      // datarevision changes (same arrays, same revision: it skips the data)
      datarevision: ++this.chartRevision,
    }, { displayModeBar: false, responsive: true });
  }
}
