// The student's screen: the game's status and the trading screen for their account.
// The session token (and the rejoin secret that gets a new one after a reload or a
// server restart) stay in sessionStorage; nothing from the network is parsed as HTML.
import { applyBook } from "/static/bookcopy.js";
import { $, api, el, fillTable, setText, Socket } from "./common.js";

// the WebSocket API on this page's own origin (the only one the CSP allows)
const WS_URL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/class/ws`;
const state = { token: sessionStorage.getItem("mc.token"), rejoin: sessionStorage.getItem("mc.rejoin"),
  ws: WS_URL, symbol: null, account: null, sock: null };

if (!state.rejoin && !state.token) location.assign("/class/");
setText("me", sessionStorage.getItem("mc.nickname") || "");

async function refreshToken() {
  // a new session token for the same account, from the rejoin secret
  const a = await api("/class/api/rejoin", { method: "POST", body: { rejoin: state.rejoin } });
  state.token = a.token;
  sessionStorage.setItem("mc.token", a.token);
  return a;
}

function activity(text, cls = "") {
  const list = $("activity");
  list.prepend(el("li", { class: cls, text }));
  while (list.children.length > 30) list.lastChild.remove();
}

function showError(err) {
  setText("order-error", err.code ? `${err.code}: ${err.message}` : err.message);
}

async function logon(sock) {
  try { await sock.call("session.logon", { token: state.token }); }
  catch (e) { await refreshToken(); await sock.call("session.logon", { token: state.token }); }
  const me = await sock.call("session.status");
  state.account = me.account;
  if (!state.symbol) {
    const info = await sock.call("exchangeInfo");
    state.symbol = info.symbols[0].symbol;
    setText("symbol", state.symbol);
  }
  await sock.call("subscribe", { streams: ["account", `mark.${state.symbol}`, `status.${state.symbol}`,
    `book.${state.symbol}`, `trades.${state.symbol}`] });
  await refreshAccount();
}

async function refreshAccount() {
  const sock = state.sock;
  if (!sock || !state.symbol) return;
  try {
    const acct = await sock.call("account.status");
    const pos = acct.positions.find((p) => p.symbol === state.symbol);
    const usdt = acct.balances.find((b) => b.asset === "USDT");
    setText("wallet", usdt ? `${usdt.total} USDT` : "–");
    if (pos && Number(pos.positionAmt) !== 0) {
      setText("pos-qty", pos.positionAmt); setText("pos-entry", pos.entryPrice);
      setText("pos-liq", pos.liquidationPrice); setText("pos-pnl", pos.unrealizedProfit);
      const ratio = Number(pos.marginRatio) * 100;
      setText("pos-ratio", `${ratio.toFixed(1)} %`);
      $("ratio-bar").classList.toggle("hot", ratio >= 70);
      $("ratio-bar").firstElementChild.style.width = `${Math.min(100, ratio)}%`;
      // the leverage field shows the position's leverage (the page's 10 is only a default)
      // unless the student is editing it: it changes only while it holds what was last put there
      const lev = $("leverage");
      if (pos.leverage != null && document.activeElement !== lev && (state.levShown === undefined || lev.value === state.levShown)) {
        lev.value = String(pos.leverage);
        state.levShown = lev.value;
      }
    } else {
      for (const id of ["pos-entry", "pos-liq", "pos-pnl", "pos-ratio"]) setText(id, "–");
      setText("pos-qty", "0");
      $("ratio-bar").firstElementChild.style.width = "0%";
    }
    const orders = await sock.call("openOrders.status", { symbol: state.symbol });
    fillTable($("orders"), orders, (o) => [o.side, o.price, o.origQty ?? o.quantity ?? "",
      el("button", { class: "secondary", text: "Cancel", onclick: () => cancel(o.orderId) })]);
  } catch (e) { /* reconnecting */ }
}

async function cancel(orderId) {
  try { await state.sock.call("order.cancel", { symbol: state.symbol, orderId }); setText("order-error", ""); }
  catch (e) { showError(e); }
  refreshAccount();
}

async function place(side) {
  setText("order-error", "");
  const type = $("type").value;
  const params = { symbol: state.symbol, side, type, quantity: $("qty").value };
  if (type === "LIMIT") { params.price = $("price").value; params.timeInForce = "GTC"; }
  try {
    const r = await state.sock.call("order.place", params);
    activity(`${side} ${r.origQty ?? params.quantity} ${type}: ${r.status}`);
  } catch (e) { showError(e); }
  refreshAccount();
}

// The order book (the best BOOK_LEVELS a side) and the last TAPE_LENGTH trades. The book
// stream starts with a snapshot of the whole book, then sends the levels whose size changed
// (size 0: gone); the trades stream has no history, so the tape starts when the page does.
const BOOK_LEVELS = 5;
const TAPE_LENGTH = 10;
const market = { bids: new Map(), asks: new Map(), bookSeq: 0, resyncing: false, resyncs: 0, trades: [] };

function onBook(d) {
  const streams = [`book.${state.symbol}`];
  const resync = () => state.sock.call("unsubscribe", { streams }).then(() => state.sock.call("subscribe", { streams })).catch(() => {});
  if (applyBook(market, d, resync)) redraw(renderBook);
}

// Redrawn at most once a frame: trades are not sampled and may come by the hundred.
const dirty = new Set();
function redraw(render) {
  if (!dirty.size) requestAnimationFrame(() => { const todo = [...dirty]; dirty.clear(); todo.forEach((r) => r()); });
  dirty.add(render);
}

// The book's rows are made once and rewritten in place, so a click is not lost to a row
// replaced between the press and the release.
function bookRows(id) {
  const body = $(id);
  body.replaceChildren(...Array.from({ length: BOOK_LEVELS }, () => el("tr", {}, el("td"), el("td"))));
  body.addEventListener("click", (e) => pickLevel(e.target.closest("tr")));
  body.addEventListener("keydown", (e) => { if (e.key === "Enter") pickLevel(e.target.closest("tr")); });
  return [...body.rows];
}
const askRows = bookRows("book-asks").reverse(); // the best ask is the bottom row, next to the spread
const bidRows = bookRows("book-bids");

function pickLevel(row) {
  if (!row || !row.dataset.price) return;
  $("type").value = "LIMIT";
  $("price").value = row.dataset.price;
  state.priceShown = null; // a price the student chose: the mark no longer moves it
}

function renderBook() {
  const best = (levels, dir) => [...levels].sort((a, b) => dir * (Number(a[0]) - Number(b[0]))).slice(0, BOOK_LEVELS);
  const asks = best(market.asks, 1);
  const bids = best(market.bids, -1);
  const paint = (rows, levels, side) => rows.forEach((row, i) => {
    const [price, size] = levels[i] || ["", ""];
    row.cells[0].textContent = price;
    row.cells[1].textContent = size;
    row.dataset.price = price;
    row.className = price ? `level ${side}${i === 0 ? " best" : ""}` : "";
    row.tabIndex = price ? 0 : -1;
    row.title = price ? "Use this price" : "";
  });
  paint(askRows, asks, "ask");
  paint(bidRows, bids, "bid");
  const decimals = (asks[0] || bids[0] || [""])[0].split(".")[1]?.length ?? 0;
  setText("book-spread", asks.length && bids.length ? `spread ${(Number(asks[0][0]) - Number(bids[0][0])).toFixed(decimals)}` : "–");
}

function renderTape() {
  // the engine's time (UTC), as the web app's tape shows it; the colour is the taker's side
  const time = (ns) => new Date(Number(ns) / 1e6).toISOString().slice(11, 19);
  fillTable($("trades"), market.trades, (t) => [time(t.ts), t.price, t.qty],
    (t) => `${t.takerSide === "BUY" ? "buy" : "sell"}${t.liquidation ? " liq" : ""}`);
}

// The last price comes from the trades and the mark streams: the newer event (by its global
// seq) wins, as a sampled mark may be sent after a trade it does not know of yet (seq 0:
// the values as they are now, sent on subscribe).
function showLast(last, seq) {
  if (seq && seq < (market.lastSeq ?? 0)) return;
  if (seq) market.lastSeq = seq;
  setText("last", Number(last) ? last : "–");
}

function onStream(name, data) {
  if (name.startsWith("book.")) {
    onBook(data);
  } else if (name.startsWith("trades.")) {
    market.trades.unshift(data);
    if (market.trades.length > TAPE_LENGTH) market.trades.pop();
    showLast(data.price, data.seq); // the mark stream says "last" only when the mark moves
    redraw(renderTape);
  } else if (name.startsWith("mark.")) {
    setText("mark", data.mark); setText("index", data.index); showLast(data.last, data.seq);
    // the price field follows the mark until the student types a price or picks a level
    // (emptying it follows the mark again)
    const price = $("price");
    if (document.activeElement !== price && (!price.value || price.value === state.priceShown)) {
      price.value = data.mark;
      state.priceShown = price.value;
    }
  } else if (name.startsWith("status.")) {
    setText("halted", data.status === "HALTED" ? "halted" : "");
  } else if (name === "account") {
    if (data.type === "liquidation") {
      const text = `You were liquidated: ${data.side} ${data.qty} at mark ${data.triggerMark} (bankruptcy ${data.bankruptcyPrice}).`;
      setText("liq-banner", text);
      activity(text, "bad");
    } else if (data.type === "fill") {
      activity(`Filled ${data.side} ${data.qty} @ ${data.price}`);
    } else if (data.type === "adl") {
      activity(`Auto-deleveraged: ${data.qty} closed at ${data.price}`, "bad");
    } else if (data.type === "rejected") {
      setText("order-error", `${data.code}: ${data.msg}`);
    }
    refreshAccount();
  }
}

async function pollStatus() {
  if (state.removed) return; // refused for good (kicked): asking again only spends the address's rate limit
  try {
    let me;
    try { me = await api("/class/api/me", { headers: { Authorization: `Bearer ${state.token}` } }); }
    catch (e) {
      if (e.status === 401 && state.rejoin) { await refreshToken(); me = await api("/class/api/me", { headers: { Authorization: `Bearer ${state.token}` } }); }
      else throw e;
    }
    const s = me.status;
    setText("game", s.game);
    setText("round", s.round ? `Round ${s.round}/${s.rounds}: ${s.roundName}` : "Lobby");
    setText("clock", s.secondsLeft != null ? `${Math.ceil(s.secondsLeft)} s left` : "");
    const banner = $("banner");
    banner.className = `banner ${s.state}`;
    banner.textContent = s.message;
    $("headlines").replaceChildren(...s.headlines.slice().reverse().map((h) => el("li", { text: h.text })));
    setText("board-title", me.scope === "game" ? "Final standings: the whole game" : "Leaderboard");
    setText("rank", me.row ? me.row.rank : "–"); setText("of", me.of);
    setText("ret", me.row ? me.row.returnPct : "–"); setText("liqs", me.row ? me.row.liquidations : "0");
    fillTable($("top"), me.top, (r) => [r.rank, r.name, r.returnPct, r.liquidations]);
    if (!state.sock && state.ws) startSocket();
  } catch (e) {
    if (e.status === 403) { state.removed = true; $("banner").textContent = e.message; return; }
    $("banner").className = "banner paused";
    $("banner").textContent = "Reconnecting to the game…";
  }
}

function startSocket() {
  state.sock = new Socket(state.ws, { onOpen: logon, onStream, onState: (s) => setText("conn", s) });
}

$("buy").addEventListener("click", () => place("BUY"));
$("sell").addEventListener("click", () => place("SELL"));
$("set-leverage").addEventListener("click", async () => {
  try { await state.sock.call("leverage.set", { symbol: state.symbol, leverage: Number($("leverage").value) }); setText("order-error", ""); activity(`Leverage ${$("leverage").value}x`); }
  catch (e) { showError(e); }
});
$("apikey").addEventListener("click", async () => {
  try {
    const k = await api("/class/api/apikey", { method: "POST", headers: { Authorization: `Bearer ${state.token}` } });
    setText("apikey-out", `MC_KEY=${k.apiKey} MC_SECRET=${k.secret}`);
  } catch (e) { setText("apikey-out", e.message); }
});

setInterval(pollStatus, 1000);
setInterval(refreshAccount, 2000);
pollStatus();
