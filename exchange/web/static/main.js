// The app: the live market (live.js: one WebSocket to the server's own origin, the
// symbol picker, the ticker, the market and liquidation views) in tabs, and the
// trading screen.
import { $, h, clear } from "./dom.js";
import { stats } from "./sched.js";
import { Live } from "./live.js";
import { TradeScreen } from "./trading.js";

const TABS = ["market", "liquidations", "trade"];

class App extends Live {
  constructor() {
    super(
      { picker: $("#symbol"), status: $("#status"), conn: $("#conn"), ticker: $("#ticker"),
        market: $("#screen-market"), liquidations: $("#screen-liquidations") },
      { wanted: new URLSearchParams(location.search).get("symbol") },
    );
    this.trade = new TradeScreen(this);
    window.addEventListener("hashchange", () => this.showTab());
    this.showTab();
  }

  visible(name) {
    return this.tab === name;
  }

  symbolChanged(inst) {
    $("#f-unit").options[0].textContent = inst.baseAsset;
    $("#f-unit").options[1].textContent = `${inst.quoteAsset} (notional)`;
  }

  showTab() {
    const tab = TABS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "market";
    this.tab = tab;
    for (const t of TABS) $(`#screen-${t}`).hidden = t !== tab;
    for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.tab === tab);
    this.showViews([tab]);
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

const app = new App();
window.__mc = { app, conn: app.conn, stats }; // for the tests and the benchmark
