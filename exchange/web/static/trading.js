// The trading screen (after a session-token logon): order ticket, leverage and isolated
// margin, position with a margin-ratio bar, open orders (cancel, amend), fills. Every
// rejection shows its code and message next to the field that caused it.
import { $, h, clear, setText, RowPool, fmtTime, num } from "./dom.js";
import { markDirty } from "./sched.js";

const TOKEN_KEY = "margincall.sessionToken";

// which ticket field a rejection code belongs to (the rest go under the button)
const FIELD_OF = {
  [-4014]: "price", [-4016]: "price", [-4024]: "price", [-4013]: "price", [-4001]: "price",
  [-4002]: "price", [-5022]: "price",
  [-4023]: "quantity", [-4003]: "quantity", [-4004]: "quantity", [-4005]: "quantity",
  [-4164]: "quantity", [-2019]: "quantity", [-2024]: "quantity", [-2027]: "quantity",
  [-2022]: "reduceOnly", [-5021]: "timeInForce", [-1115]: "timeInForce",
  [-4006]: "stopPrice", [-2021]: "stopPrice", [-4015]: "newClientOrderId",
  [-1116]: "type", [-1117]: "side", [-4028]: "leverage",
};
const FIELDS = ["type", "price", "stopPrice", "quantity", "timeInForce", "newClientOrderId", "reduceOnly", "side"];

export function fieldFor(err) {
  const named = /Parameter '(\w+)'/.exec(err.msg || "");
  if (named && FIELDS.includes(named[1])) return named[1];
  return FIELD_OF[err.code] || "_form";
}

function decimalsOf(step) {
  return (String(step).split(".")[1] || "").replace(/0+$/, "").length;
}

export class TradeScreen {
  constructor(app) {
    this.app = app;
    this.account = null;
    this.orders = [];
    this.fills = [];
    this.fillPool = new RowPool($("#fills"), 7, 200);
    this.status = null;
    $("#logon-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.logon($("#logon-token").value.trim());
    });
    $("#ticket").addEventListener("submit", (e) => {
      e.preventDefault();
      this.place();
    });
    $("#f-type").addEventListener("change", () => this.showFields());
    for (const r of document.querySelectorAll("input[name=side]")) r.addEventListener("change", () => this.showFields());
    $("#lev-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.setLeverage();
    });
    $("#margin-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.adjustMargin(e.submitter?.dataset.type === "2" ? 2 : 1);
    });
    this.onAccount = (d) => this.accountEvent(d);
    this.showFields();
    app.conn.onLogonLost = (e) => this.loggedOut(`Logged out: ${e.code} ${e.msg}`);
    setInterval(() => this.refresh(), 1000);
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) app.whenOpen(() => this.logon(saved));
  }

  showFields() {
    const type = $("#f-type").value;
    for (const el of document.querySelectorAll("#ticket [data-show]")) el.hidden = !el.dataset.show.split(" ").includes(type);
    const side = document.querySelector("input[name=side]:checked").value;
    const btn = $("#f-submit");
    btn.className = side === "BUY" ? "buy" : "sell";
    setText(btn, `${side === "BUY" ? "Buy" : "Sell"} ${type.replaceAll("_", " ").toLowerCase()}`);
  }

  async logon(token) {
    const err = $("#logon-err");
    setText(err, "");
    if (!token) return setText(err, "Paste a session token first.");
    const conn = this.app.conn;
    try {
      const res = await conn.call("session.logon", { token });
      conn.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      this.account = res.account;
      this.label = res.label;
      await conn.subscribe(["account"]);
      conn.on("account", this.onAccount);
      $("#logon").hidden = true;
      $("#trading").hidden = false;
      this.app.setWho(res.account, res.label, () => this.logout());
      await this.refresh(true);
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      setText(err, `${e.code} ${e.msg}`);
    }
  }

  async logout() {
    const conn = this.app.conn;
    try {
      await conn.call("session.logout");
    } catch {
      /* the connection may be gone: forgetting the token is what matters */
    }
    this.loggedOut("");
  }

  loggedOut(why) {
    const conn = this.app.conn;
    conn.token = null;
    conn.streams.delete("account");
    sessionStorage.removeItem(TOKEN_KEY);
    this.account = null;
    $("#logon").hidden = false;
    $("#trading").hidden = true;
    setText($("#logon-err"), why);
    this.app.setWho(null);
  }

  accountEvent(d) {
    if (d.type === "fill") {
      this.fills.unshift(d);
      if (this.fills.length > 200) this.fills.length = 200;
      markDirty("fills", () => this.renderFills());
    }
    if (["order", "fill", "position", "balance", "margin", "leverage", "liquidation", "adl"].includes(d.type)) {
      this.refreshSoon();
    }
  }

  refreshSoon() {
    if (this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = null;
      this.refresh(true);
    }, 150);
  }

  async refresh(orders = false) {
    const conn = this.app.conn;
    if (this.account === null || conn.state !== "open") return;
    try {
      this.status = await conn.call("account.status");
      if (orders || !this.ordersAt || performance.now() - this.ordersAt > 3000) {
        this.orders = await conn.call("openOrders.status", { symbol: this.app.symbol });
        this.ordersAt = performance.now();
        markDirty("orders", () => this.renderOrders());
      }
    } catch (e) {
      if (e.code === -2015) this.loggedOut(`Logged out: ${e.code} ${e.msg}`);
      return;
    }
    markDirty("position", () => this.renderPosition());
  }

  clearErrors(form) {
    for (const el of form.querySelectorAll(".err")) setText(el, "");
  }

  showError(form, field, e) {
    const el = form.querySelector(`.err[data-for="${field}"]`) || form.querySelector('.err[data-for="_form"]');
    setText(el, `${e.code}: ${e.msg}`);
  }

  quantity(form, inst) {
    const raw = form.quantity.value.trim();
    if (form.unit.value !== "quote" || !raw) return raw;
    // notional → lots at the limit price (or the mark), rounded down to the step
    const px = num(form.price.value) || num(this.app.lastMark);
    if (!px) return raw;
    const step = num(inst.stepSize);
    const lots = Math.floor(num(raw) / px / step + 1e-9);
    return (lots * step).toFixed(decimalsOf(inst.stepSize));
  }

  async place() {
    const form = $("#ticket");
    this.clearErrors(form);
    setText($("#ticket-ok"), "");
    const inst = this.app.instrument();
    const type = form.type.value;
    const p = { symbol: this.app.symbol, side: form.side.value, type, quantity: this.quantity(form, inst) };
    if (type === "LIMIT") {
      p.price = form.price.value.trim();
      p.timeInForce = form.timeInForce.value;
    } else {
      p.stopPrice = form.stopPrice.value.trim();
    }
    if (type === "MARKET") delete p.stopPrice;
    if (form.reduceOnly.checked) p.reduceOnly = true;
    const cid = form.newClientOrderId.value.trim();
    if (cid) p.newClientOrderId = cid;
    for (const k of Object.keys(p)) if (p[k] === "") delete p[k];
    try {
      const res = await this.app.conn.call("order.place", p);
      setText($("#ticket-ok"), `Order ${res.orderId} ${res.status}: ${res.executedQty} of ${res.origQty} filled`);
      this.refresh(true);
    } catch (e) {
      this.showError(form, fieldFor(e), e);
    }
  }

  async setLeverage() {
    const form = $("#lev-form");
    this.clearErrors(form);
    try {
      await this.app.conn.call("leverage.set", { symbol: this.app.symbol, leverage: Number(form.leverage.value) });
      this.refresh();
    } catch (e) {
      this.showError(form, "leverage", e);
    }
  }

  async adjustMargin(type) {
    const form = $("#margin-form");
    this.clearErrors(form);
    try {
      await this.app.conn.call("position.margin", { symbol: this.app.symbol, amount: form.amount.value.trim(), type });
      this.refresh();
    } catch (e) {
      this.showError(form, "amount", e);
    }
  }

  renderPosition() {
    const st = this.status;
    const box = $("#position");
    clear(box);
    if (!st) return;
    const pos = st.positions.find((p) => p.symbol === this.app.symbol);
    const kv = (k, v, cls = "") => h("div", {}, h("span", { class: "k", text: k }), h("span", { class: `v ${cls}`, text: v }));
    const sign = (v) => (num(v) > 0 ? "pos-pos" : num(v) < 0 ? "pos-neg" : "");
    if (pos && num(pos.positionAmt)) {
      box.append(
        kv("Size", pos.positionAmt, sign(pos.positionAmt)), kv("Entry price", pos.entryPrice),
        kv("Mark price", pos.markPrice), kv("Liquidation price", pos.liquidationPrice),
        kv("Bankruptcy price", pos.bankruptcyPrice), kv("Isolated margin", pos.isolatedMargin),
        kv("Leverage", `${pos.leverage}x`), kv("Maint. margin", pos.maintMargin),
        kv("Unrealized PnL", pos.unrealizedProfit, sign(pos.unrealizedProfit)),
        kv("Realized PnL", pos.realizedPnl, sign(pos.realizedPnl)), kv("Notional", pos.notional),
      );
    } else {
      box.append(h("p", { class: "empty", text: `No position in ${this.app.symbol}.` }));
      if (pos) box.append(kv("Realized PnL", pos.realizedPnl, sign(pos.realizedPnl)));
    }
    // the leverage field shows the symbol's leverage (not the page's default of 10), unless
    // the user is editing it: it changes only while it still holds what was last put there
    const lev = $("#f-lev");
    if (pos && pos.leverage != null && document.activeElement !== lev && (this.levShown === undefined || lev.value === this.levShown)) {
      lev.value = String(pos.leverage);
      this.levShown = lev.value;
    }
    const ratio = pos && num(pos.positionAmt) ? num(pos.marginRatio) : 0;
    const fill = $("#ratio-fill");
    fill.style.width = `${Math.min(100, ratio * 100).toFixed(1)}%`;
    fill.className = `fill${ratio >= 0.8 ? " danger" : ratio >= 0.5 ? " warn" : ""}`;
    setText($("#ratio-text"), pos && num(pos.positionAmt) ? `${(ratio * 100).toFixed(2)} % (liquidated at 100 %)` : "–");
    const bal = $("#balance");
    clear(bal);
    for (const b of st.balances) bal.append(kv(`${b.asset} available`, b.available), kv(`${b.asset} in orders/margin`, b.reserved), kv(`${b.asset} total`, b.total));
  }

  renderOrders() {
    // rebuilt only when the orders changed, so what the user types into amend stays
    const sig = JSON.stringify(this.orders);
    if (sig === this.ordersSig) return;
    this.ordersSig = sig;
    const body = $("#open-orders");
    clear(body);
    if (!this.orders.length) {
      body.append(h("tr", {}, h("td", { class: "empty", colspan: 11, text: "No open orders." })));
      return;
    }
    for (const o of this.orders) {
      // only a LIMIT order has a price and can be amended (order.modify refuses the others);
      // a price or stop the order does not have is "–", not the API's "0.00"
      const limit = o.type === "LIMIT";
      const err = h("span", { class: "err" });
      const amendCell = h("td", {});
      if (limit) {
        const price = h("input", { value: o.price, "aria-label": `new price of order ${o.orderId}` });
        const qty = h("input", { value: o.origQty, "aria-label": `new size of order ${o.orderId}` });
        const amend = h("button", { type: "button", text: "Amend", onclick: () => this.amend(o, price.value.trim(), qty.value.trim(), err) });
        amendCell.append(price, " ", qty, " ", amend);
      }
      amendCell.append(err);
      const cancel = h("button", { type: "button", text: "Cancel", onclick: () => this.cancel(o, err) });
      body.append(h("tr", { class: o.side, "data-order-id": o.orderId },
        h("td", { text: o.orderId }), h("td", { text: o.clientOrderId ?? "" }), h("td", { class: "side", text: o.side }),
        h("td", { text: o.type }), h("td", { text: limit ? o.price : "–" }), h("td", { text: num(o.stopPrice) ? o.stopPrice : "–" }),
        h("td", { text: o.origQty }), h("td", { text: o.executedQty }), h("td", { text: o.status }),
        amendCell, h("td", {}, cancel)));
    }
  }

  async cancel(o, err) {
    setText(err, "");
    try {
      await this.app.conn.call("order.cancel", { symbol: o.symbol, orderId: o.orderId });
      this.refresh(true);
    } catch (e) {
      setText(err, `${e.code}: ${e.msg}`);
    }
  }

  async amend(o, price, quantity, err) {
    setText(err, "");
    const p = { symbol: o.symbol, orderId: o.orderId };
    if (price && price !== o.price) p.price = price;
    if (quantity && quantity !== o.origQty) p.quantity = quantity;
    try {
      await this.app.conn.call("order.modify", p);
      this.refresh(true);
    } catch (e) {
      setText(err, `${e.code}: ${e.msg}`);
    }
  }

  renderFills() {
    this.fillPool.fill(this.fills.map((f) => [fmtTime(f.ts), f.orderId, f.side, f.price, f.qty, `${f.fee} ${f.feeAsset}`, f.liquidation ? "liquidation" : f.maker ? "maker" : "taker"]),
      (i) => this.fills[i].side);
  }
}
