// The live market around its views: one connection to the page's own origin, the
// instruments, the symbol being watched (switching unsubscribes the old symbol's
// streams and subscribes the new one's), its status and the ticker. The views
// (MarketScreen, LiquidationScreen) are each built into an element of the page, so
// the web app (main.js) and the classroom's instructor console mount the same code.
import { Conn } from "./conn.js";
import { h, clear, setText } from "./dom.js";
import { markDirty } from "./sched.js";
import { MarketScreen } from "./market.js";
import { LiquidationScreen } from "./liquidations.js";
import { Ticker } from "./ticker.js";

export function pageSocketUrl(path = "/api/ws") {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${path}`;
}

export class Live {
  /**
   * els: { picker: <select> of symbols, status: badge, conn: connection state,
   *        ticker, market, liquidations: elements to build those views into (each
   *        optional) }; opts: { url, wanted: the symbol to start on }.
   * One of each view per page: they keep the web app's element ids.
   */
  constructor(els, opts = {}) {
    this.els = els;
    this.opts = opts;
    this.conn = new Conn(opts.url ?? pageSocketUrl());
    this.symbol = null;
    this.instruments = new Map();
    this.only = null; // the symbols to offer (null: every instrument of the exchange)
    this.waiting = [];
    this.lastMark = null;
    this.ticker = els.ticker ? new Ticker(this, els.ticker) : null;
    this.market = els.market ? new MarketScreen(this, els.market) : null;
    this.liqs = els.liquidations ? new LiquidationScreen(this, els.liquidations) : null;
    this.conn.onState = (s, detail) => {
      if (!els.conn) return;
      els.conn.className = `conn ${s}`;
      setText(els.conn, s === "open" ? "live" : `${s}${detail ? ` (${detail})` : ""}`);
    };
    this.conn.onOpen = () => this.opened();
    els.picker.addEventListener("change", () => this.switchSymbol(els.picker.value));
  }

  /** Whether a view is on screen (charts drawn while hidden have no size). */
  visible(_name) {
    return true;
  }

  /** Call `fn` once connected and a symbol is chosen. */
  whenOpen(fn) {
    if (this.conn.state === "open" && this.symbol) fn();
    else this.waiting.push(fn);
  }

  async opened() {
    if (this.symbol) for (const s of this.screens()) s.reconnected?.();
    if (!this.instruments.size) {
      const info = await this.conn.call("exchangeInfo");
      for (const s of info.symbols) this.instruments.set(s.symbol, s);
    }
    if (!this.symbol) {
      this.fillPicker();
      const offered = this.offered();
      if (!offered.length) return;
      await this.switchSymbol(offered.includes(this.opts.wanted) ? this.opts.wanted : offered[0]);
    }
    this.ticker?.poll();
    const fns = this.waiting;
    this.waiting = [];
    for (const fn of fns) fn();
  }

  offered() {
    const all = [...this.instruments.keys()];
    return this.only ? all.filter((s) => this.only.includes(s)) : all;
  }

  fillPicker() {
    const sel = this.els.picker;
    clear(sel);
    for (const s of this.offered()) sel.append(h("option", { value: s, text: s }));
    if (this.symbol) sel.value = this.symbol;
  }

  /** Offer only these symbols (e.g. a game's instruments); moves off a symbol dropped. */
  async offer(symbols) {
    const list = [...symbols];
    if (this.only && this.only.join() === list.join()) return;
    this.only = list;
    if (!this.instruments.size) return; // applied once the instruments are known
    this.fillPicker();
    const offered = this.offered();
    if (offered.length && !offered.includes(this.symbol)) await this.switchSymbol(offered[0]);
  }

  instrument() {
    return this.instruments.get(this.symbol);
  }

  screens() {
    return [this.market, this.liqs].filter(Boolean);
  }

  async switchSymbol(sym) {
    const conn = this.conn;
    if (this.symbol) {
      const old = this.symbol;
      const names = [...new Set(this.screens().flatMap((s) => Object.keys(s.streams(old))))];
      for (const s of this.screens()) for (const [name, fn] of Object.entries(s.streams(old))) conn.handlers.get(name)?.delete(fn);
      conn.handlers.get(`status.${old}`)?.clear();
      await conn.unsubscribe([...names.filter((n) => n !== "cascades"), `status.${old}`]).catch(() => {});
      for (const s of this.screens()) s.reset();
    }
    this.symbol = sym;
    this.els.picker.value = sym;
    this.symbolChanged(this.instrument());
    const names = new Set();
    for (const s of this.screens()) {
      for (const [name, fn] of Object.entries(s.streams(sym))) {
        conn.on(name, fn);
        names.add(name);
      }
    }
    names.add(`status.${sym}`);
    conn.on(`status.${sym}`, (d) => this.setStatus(d.status));
    await conn.subscribe([...names]);
    this.ticker?.poll();
    this.showViews(["market", "liquidations"].filter((n) => this.visible(n)));
  }

  /** A hook for the page (the web app relabels its order ticket). */
  symbolChanged(_inst) {}

  setStatus(status) {
    const el = this.els.status;
    if (!el) return;
    el.className = `badge ${status}`;
    setText(el, status);
  }

  /** A mark price (stream or poll): the ticker shows it, the trade ticket sizes by it. */
  tickerMark(d) {
    this.lastMark = d.mark;
    this.ticker?.mark(d);
  }

  /** Views just shown: draw what was drawn hidden (no size then). */
  showViews(names) {
    if (names.includes("market")) this.market?.chartDirty();
    if (names.includes("liquidations") && this.liqs) {
      this.liqs.pollLadder();
      this.liqs.pathKey = this.liqs.treeKey = null;
      markDirty("tree", () => this.liqs.renderTree());
    }
  }
}
