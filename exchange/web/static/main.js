// The app: one WebSocket to the server's own origin, three screens, a symbol picker.
import { Conn } from "./conn.js";
import { $, h, clear, setText, fmtNum } from "./dom.js";
import { markDirty, stats } from "./sched.js";
import { MarketScreen } from "./market.js";
import { LiquidationScreen } from "./liquidations.js";
import { TradeScreen } from "./trading.js";

const TABS = ["market", "liquidations", "trade"];

class App {
  constructor() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    this.conn = new Conn(`${proto}//${location.host}/api/ws`);
    this.symbol = null;
    this.instruments = new Map();
    this.waiting = [];
    this.lastMark = null;
    this.nextFunding = null;
    this.market = new MarketScreen(this);
    this.liqs = new LiquidationScreen(this);
    this.trade = new TradeScreen(this);
    this.conn.onState = (s, detail) => {
      const el = $("#conn");
      el.className = `conn ${s}`;
      setText(el, s === "open" ? "live" : `${s}${detail ? ` (${detail})` : ""}`);
    };
    this.conn.onOpen = () => this.opened();
    $("#symbol").addEventListener("change", () => this.switchSymbol($("#symbol").value));
    window.addEventListener("hashchange", () => this.showTab());
    this.showTab();
    setInterval(() => this.pollTicker(), 1000);
    setInterval(() => this.countdown(), 1000);
  }

  whenOpen(fn) {
    if (this.conn.state === "open" && this.symbol) fn();
    else this.waiting.push(fn);
  }

  async opened() {
    if (!this.symbol) {
      const info = await this.conn.call("exchangeInfo");
      const sel = $("#symbol");
      clear(sel);
      for (const s of info.symbols) {
        this.instruments.set(s.symbol, s);
        sel.append(h("option", { value: s.symbol, text: s.symbol }));
      }
      const wanted = new URLSearchParams(location.search).get("symbol");
      await this.switchSymbol(this.instruments.has(wanted) ? wanted : info.symbols[0].symbol);
    }
    this.pollTicker();
    const fns = this.waiting;
    this.waiting = [];
    for (const fn of fns) fn();
  }

  instrument() {
    return this.instruments.get(this.symbol);
  }

  screens() {
    return [this.market, this.liqs];
  }

  async switchSymbol(sym) {
    const conn = this.conn;
    if (this.symbol) {
      const old = this.symbol;
      const names = [...new Set(this.screens().flatMap((s) => Object.keys(s.streams(old))))];
      for (const s of this.screens()) for (const [name, fn] of Object.entries(s.streams(old))) conn.handlers.get(name)?.delete(fn);
      await conn.unsubscribe(names.filter((n) => n !== "cascades")).catch(() => {});
      for (const s of this.screens()) s.reset();
    }
    this.symbol = sym;
    $("#symbol").value = sym;
    const inst = this.instrument();
    $("#f-unit").options[0].textContent = inst.baseAsset;
    $("#f-unit").options[1].textContent = `${inst.quoteAsset} (notional)`;
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
    this.pollTicker();
  }

  showTab() {
    const tab = TABS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "market";
    this.tab = tab;
    for (const t of TABS) $(`#screen-${t}`).hidden = t !== tab;
    for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.tab === tab);
    // charts drawn while hidden have no size: draw them now
    if (tab === "market") this.market.chartDirty();
    if (tab === "liquidations") {
      this.liqs.pollLadder();
      this.liqs.pathKey = this.liqs.treeKey = null; // drawn while hidden: no size
      markDirty("tree", () => this.liqs.renderTree());
    }
  }

  setStatus(status) {
    const el = $("#status");
    el.className = `badge ${status}`;
    setText(el, status);
  }

  tickerMark(d) {
    this.lastMark = d.mark;
    setText($("#t-mark"), fmtNum(d.mark));
    setText($("#t-index"), fmtNum(d.index));
    setText($("#t-last"), num0(d.last) ? fmtNum(d.last) : "–");
    setText($("#t-funding"), `${(Number(d.fundingRate) * 100).toFixed(4)} %`);
    this.nextFunding = { at: BigInt(d.nextFundingTs), ts: BigInt(d.ts), seen: performance.now() };
  }

  async pollTicker() {
    if (!this.symbol || this.conn.state !== "open") return;
    try {
      const t = await this.conn.call("ticker", { symbol: this.symbol });
      this.setStatus(t.status);
      if (Number(t.mark)) this.market.mark(t); // one chart point a second even when quiet
      setText($("#t-fund"), `${fmtNum(t.insuranceFund, 2)} ${this.instrument().quoteAsset}`);
    } catch {
      /* the next poll will tell */
    }
  }

  countdown() {
    const f = this.nextFunding;
    if (!f) return;
    const left = Number(f.at - f.ts) / 1e9 - (performance.now() - f.seen) / 1000;
    const s = Math.max(0, Math.floor(left));
    const hh = String(Math.floor(s / 3600)).padStart(2, "0");
    const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
    const ss = String(s % 60).padStart(2, "0");
    setText($("#t-countdown"), `${hh}:${mm}:${ss}`);
  }

  setWho(account, label, logout) {
    const el = $("#who");
    clear(el);
    if (account === null || account === undefined) return;
    el.append(`account ${account}`);
    if (label) el.append(" · ", h("b", { class: "label", text: label }));
    el.append(" ", h("button", { type: "button", text: "Log out", onclick: logout }));
  }
}

function num0(s) {
  return Number(s) || 0;
}

const app = new App();
window.__mc = { app, conn: app.conn, stats }; // for the tests and the benchmark
