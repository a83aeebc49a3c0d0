// The instructor console: game controls, the web app's market and liquidation views
// (its own modules, mounted into two sections: one code path), the leaderboard and
// every student's risk. The admin token is kept in this tab's sessionStorage and sent
// as X-Admin-Token; the views need none (public streams on the page's own origin).
import { $, api, el, fillTable, setText } from "./common.js";
import { Live } from "/static/live.js";

let token = sessionStorage.getItem("mc.admin") || "";
const adm = (path, opts = {}) => api(path, { ...opts, headers: { ...(opts.headers || {}), "X-Admin-Token": token } });
const money = (q) => (Number(q) / 1e8).toFixed(2);

function fail(err) { setText("action-error", err.message); }

async function act(action) {
  setText("action-error", "");
  try { await adm("/class/api/admin/action", { method: "POST", body: { action } }); } catch (e) { fail(e); }
  refresh();
}

async function studentAction(student, action) {
  try { await adm("/class/api/admin/student", { method: "POST", body: { student, action } }); } catch (e) { fail(e); }
  refresh();
}

async function hold(symbol, held) {
  try { await adm("/class/api/admin/hold", { method: "POST", body: { symbol, held } }); } catch (e) { fail(e); }
  refresh();
}

let live = null; // the market views, mounted once the console is open

function mountViews(symbols) {
  if (!live) {
    $("market-section").hidden = false;
    $("liquidations-section").hidden = false;
    live = new Live({ picker: $("symbol"), status: $("status"), conn: $("conn"), ticker: $("ticker"),
      market: $("market-view"), liquidations: $("liquidations-view") });
  }
  live.offer(symbols); // the symbol picker follows the game's instruments
}

async function refresh() {
  if (!token) return;
  let o;
  try { o = await adm("/class/api/admin/overview"); }
  catch (e) {
    if (e.status === 401) { $("login-box").hidden = false; setText("login-error", e.message); }
    else { setText("banner", "Reconnecting to the game…"); }
    return;
  }
  $("login-box").hidden = true;
  const s = o.status;
  setText("game", s.game); setText("state", s.state.replace("_", " "));
  setText("round", s.round ? `Round ${s.round}/${s.rounds}: ${s.roundName}` : "Lobby");
  setText("clock", s.secondsLeft != null ? `${Math.ceil(s.secondsLeft)} s left` : "");
  setText("join-code", o.joinCode); setText("join-url", o.joinUrl || "");
  setText("banner", s.message);
  $("reveal").checked = s.revealed;
  mountViews(s.symbols.map((m) => m.symbol));
  $("symbols").replaceChildren(...s.symbols.map((m) => el("button", {
    class: m.halted ? "danger" : "secondary",
    text: `${m.symbol}: ${m.halted ? "halted" : "trading"}${m.heldBy ? ` (held by ${m.heldBy})` : ""} — ${m.heldBy === "instructor" ? "resume" : "halt"}`,
    onclick: () => hold(m.symbol, m.heldBy !== "instructor"),
  })));
  fillTable($("board"), o.leaderboard, (r) => [r.rank, r.name, money(r.equity), r.returnPct, r.maxDrawdownPct,
    r.liquidations, r.adlHits, money(r.fees)]);
  fillTable($("students"), o.students, (r) => {
    const p = r.positions[0];
    const actions = el("span");
    for (const st of r.students) {
      actions.append(el("button", { class: "secondary", text: st.frozen ? `unfreeze ${st.nickname}` : `freeze ${st.nickname}`,
        onclick: () => studentAction(st.id, st.frozen ? "unfreeze" : "freeze") }), " ",
      el("button", { class: "danger", text: st.kicked ? "kicked" : `kick ${st.nickname}`, disabled: st.kicked ? "" : null,
        onclick: () => studentAction(st.id, "kick") }));
    }
    return [r.name, p ? `${p.qty} ${p.symbol}` : "0", p ? p.liquidationPrice ?? "–" : "–", p ? p.mark : "–", `${r.marginRatioPct} %`, actions];
  }, (r) => (Number(r.marginRatioPct) >= 70 ? "danger-high" : ""));
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value; sessionStorage.setItem("mc.admin", token); refresh();
});
for (const b of document.querySelectorAll("button[data-action]")) b.addEventListener("click", () => act(b.dataset.action));
$("shock").addEventListener("submit", async (e) => {
  e.preventDefault();
  try { await adm("/class/api/admin/shock", { method: "POST", body: { size: $("shock-size").value, over: Number($("shock-over").value) } }); setText("action-error", ""); }
  catch (err) { fail(err); }
});
$("headline").addEventListener("submit", async (e) => {
  e.preventDefault();
  try { await adm("/class/api/admin/headline", { method: "POST", body: { text: $("headline-text").value } }); $("headline-text").value = ""; }
  catch (err) { fail(err); }
});
$("reveal").addEventListener("change", async () => {
  try { await adm("/class/api/admin/reveal", { method: "POST", body: { revealed: $("reveal").checked } }); } catch (e) { fail(e); }
});
$("import").addEventListener("click", async () => {
  setText("roster-error", "");
  try {
    const r = await adm("/class/api/admin/roster", { method: "POST", body: $("roster").value });
    $("slips").replaceChildren(...r.slips.map((s) => el("div", { class: "slip" },
      el("div", { text: s.nickname + (s.team ? ` (team ${s.team})` : "") }),
      el("div", { text: `Open ${r.joinUrl || "/class/"}` }),
      el("div", { text: "Personal code:" }), el("strong", { text: s.personalCode }))));
  } catch (e) { setText("roster-error", e.message); }
});
$("print").addEventListener("click", () => window.print());
$("open-debrief").addEventListener("click", () => window.open("/class/debrief", "_blank"));
$("export").addEventListener("click", async () => {
  const q = new URLSearchParams({ table: $("export-table").value, round: $("export-round").value, format: $("export-format").value });
  const r = await fetch(`/class/api/admin/export?${q}`, { headers: { "X-Admin-Token": token } });
  if (!r.ok) { fail(new Error((await r.json()).msg)); return; }
  const url = URL.createObjectURL(await r.blob());
  const a = el("a", { href: url, download: `round${q.get("round")}-${q.get("table")}.${q.get("format")}` });
  document.body.append(a); a.click(); a.remove();
});

if (token) $("token").value = token;
setInterval(refresh, 1000);
refresh();
