// The debrief report: per round the price path with every liquidation at its
// triggering mark, each cascade and who was in it, every student's equity curve and
// the leaderboard; after the rounds, the standings over the whole game. Data comes from the page's JSON block (a saved report) or, in the
// app, from the instructor API. Charts are plotly.js; all text goes through textContent.
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) { if (k === "text") e.textContent = v; else if (k === "class") e.className = v; else e.setAttribute(k, v); }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

function table(headers, rows) {
  const t = el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))));
  const body = el("tbody");
  for (const r of rows) body.append(el("tr", {}, ...r.map((c) => el("td", { text: String(c ?? "") }))));
  t.append(body);
  return t;
}

const layout = (title) => ({ title: { text: title }, paper_bgcolor: "#17212b", plot_bgcolor: "#0f1720",
  font: { color: "#e6edf3" }, xaxis: { type: "date" }, margin: { t: 40, r: 10, l: 60, b: 40 }, legend: { orientation: "h" } });

function render(data) {
  document.title = `Debrief: ${data.game}`;
  $("title").textContent = `Debrief: ${data.game}`;
  const root = $("rounds");
  root.replaceChildren();
  for (const r of data.rounds) {
    const sec = el("section", { class: "round" }, el("h2", { text: `Round ${r.round}: ${r.name}` }));
    root.append(sec);
    const price = el("div", { class: "chart", id: `price-${r.round}` });
    sec.append(price);
    const liq = r.liquidations;
    Plotly.newPlot(price, [
      { x: r.prices.ts, y: r.prices.mark, name: "mark", mode: "lines" },
      { x: r.prices.ts, y: r.prices.index, name: "index", mode: "lines", line: { dash: "dot" } },
      { x: r.prices.ts, y: r.prices.last, name: "last", mode: "lines", line: { width: 1 } },
      { x: liq.map((l) => l.ts), y: liq.map((l) => l.triggerMark), name: "liquidations (trigger mark)",
        mode: "markers", marker: { color: "#f85149", size: 9, symbol: "x" },
        text: liq.map((l) => `${l.name}: ${l.side} ${l.qty}, cascade ${l.cascade} gen ${l.generation}`), hoverinfo: "text+y" },
    ], layout(`${r.symbol}: price path and liquidations`), { responsive: true });
    const eq = el("div", { class: "chart", id: `equity-${r.round}` });
    sec.append(eq);
    const traces = r.curves.map((c) => ({ x: c.ts, y: c.equity, name: c.name, mode: "lines" }));
    const studentLiqs = liq.filter((l) => l.student);
    const curveOf = new Map(r.curves.map((c) => [c.account, c]));
    traces.push({ x: studentLiqs.map((l) => l.ts), name: "liquidated", mode: "markers",
      y: studentLiqs.map((l) => { const c = curveOf.get(l.account); if (!c) return null; let v = c.equity[0]; for (let i = 0; i < c.ts.length && c.ts[i] <= l.ts; i++) v = c.equity[i]; return v; }),
      marker: { color: "#f85149", size: 10, symbol: "x" }, text: studentLiqs.map((l) => `${l.name} at mark ${l.triggerMark}`), hoverinfo: "text" });
    Plotly.newPlot(eq, traces, layout("Every student's equity (USDT)"), { responsive: true });
    sec.append(el("h3", { text: "Cascades" }));
    sec.append(table(["cascade", "liquidations", "generations", "fund change", "who (generation, side, trigger mark)"],
      r.cascades.map((c) => [c.id, c.count ?? c.members.length, c.generations ?? "", c.fundChange ?? "",
        c.members.map((m) => `${m.name} (g${m.generation}, ${m.side}, ${m.triggerMark})`).join("; ")])));
    sec.append(el("h3", { text: "Liquidations suffered" }));
    sec.append(table(["who", "side", "size", "trigger mark", "bankruptcy price", "closed by", "cascade"],
      studentLiqs.map((l) => [l.name, l.side, l.qty, l.triggerMark, l.bankruptcyPrice, l.closedBy, l.cascade])));
    sec.append(el("h3", { text: "Leaderboard" }));
    sec.append(table(["#", "name", "equity", "return %", "max drawdown %", "liquidations", "ADL"],
      r.leaderboard.map((b) => [b.rank, b.name, b.equity.toFixed(2), b.returnPct, b.maxDrawdownPct, b.liquidations, b.adlHits])));
    if (r.headlines.length) {
      sec.append(el("h3", { text: "Headlines" }));
      sec.append(el("ul", {}, ...r.headlines.map((h) => el("li", { text: h.text }))));
    }
  }
  const overall = data.standings || [];
  if (overall.length) {
    // each round's profit summed (the console's board at game over): one table after the rounds
    root.append(el("section", { class: "round" }, el("h2", { text: "The whole game: every round played" }),
      table(["#", "name", "equity", "return %", "max drawdown %", "liquidations", "ADL"],
        overall.map((b) => [b.rank, b.name, b.equity.toFixed(2), b.returnPct, b.maxDrawdownPct, b.liquidations, b.adlHits]))));
  }
}

const embedded = document.getElementById("debrief-data");
if (embedded) render(JSON.parse(embedded.textContent));
else {
  fetch("/class/api/admin/debrief", { headers: { "X-Admin-Token": sessionStorage.getItem("mc.admin") || "" } })
    .then(async (r) => { if (!r.ok) throw new Error((await r.json()).msg); return r.json(); })
    .then(render)
    .catch((e) => { $("debrief-error").textContent = e.message; });
}
