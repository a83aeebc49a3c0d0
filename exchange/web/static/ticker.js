// The ticker strip: mark, index, last, funding rate, the countdown to the next funding
// and the insurance fund. Built into the element it is given; fed by the mark stream
// (through the market view) and by polling `ticker` once a second.
import { $, h, setText, fmtNum } from "./dom.js";

const FIELDS = [
  ["mark", "Mark"], ["index", "Index"], ["last", "Last"], ["funding", "Funding rate"],
  ["countdown", "Next funding in"], ["fund", "Insurance fund"],
];

export class Ticker {
  constructor(live, root) {
    this.live = live;
    this.root = root;
    root.classList.add("ticker");
    for (const [id, label] of FIELDS) {
      root.append(h("div", {}, h("span", { class: "k", text: label }), h("span", { class: "v", id: `t-${id}`, text: "–" })));
    }
    this.nextFunding = null;
    setInterval(() => this.poll(), 1000);
    setInterval(() => this.countdown(), 1000);
  }

  el(id) {
    return $(`#t-${id}`, this.root);
  }

  /** A mark-stream message (or a `ticker` answer): its prices and funding. */
  mark(d) {
    setText(this.el("mark"), fmtNum(d.mark));
    setText(this.el("index"), fmtNum(d.index));
    setText(this.el("last"), Number(d.last) ? fmtNum(d.last) : "–");
    setText(this.el("funding"), `${(Number(d.fundingRate) * 100).toFixed(4)} %`);
    this.nextFunding = { at: BigInt(d.nextFundingTs), ts: BigInt(d.ts), seen: performance.now() };
  }

  async poll() {
    const live = this.live;
    if (!live.symbol || live.conn.state !== "open") return;
    try {
      const t = await live.conn.call("ticker", { symbol: live.symbol });
      live.setStatus(t.status);
      if (Number(t.mark)) live.market?.mark(t); // one chart point a second even when quiet
      const fund = `${fmtNum(t.insuranceFund, 2)} ${live.instrument().quoteAsset}`;
      setText(this.el("fund"), fund);
      live.liqs?.fund(fund);
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
    setText(this.el("countdown"), `${hh}:${mm}:${ss}`);
  }
}
