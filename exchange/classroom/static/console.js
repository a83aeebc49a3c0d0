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

// One row of the students table is one account: a team's members share it (a frozen
// or kicked member freezes it), so its buttons act on every member at once.
async function studentsAction(students, action) {
  setText("action-error", "");
  try {
    for (const student of students) await adm("/class/api/admin/student", { method: "POST", body: { student, action } });
  } catch (e) { fail(e); }
  refresh();
}

function accountButtons(r) {
  const frozen = r.students.some((m) => m.frozen);
  const playing = r.students.filter((m) => !m.kicked);
  return el("span", {},
    el("button", { class: "secondary", text: `${frozen ? "unfreeze" : "freeze"} ${r.name}`,
      onclick: () => studentsAction(r.students.filter((m) => m.frozen === frozen).map((m) => m.id), frozen ? "unfreeze" : "freeze") }),
    " ",
    el("button", { class: "danger", text: playing.length ? `kick ${r.name}` : "kicked", disabled: !playing.length,
      onclick: () => studentsAction(playing.map((m) => m.id), "kick") }));
}

async function hold(symbol, held) {
  try { await adm("/class/api/admin/hold", { method: "POST", body: { symbol, held } }); } catch (e) { fail(e); }
  refresh();
}

// Halt or resume one symbol. An instructor's halt needs a round in play (in every other
// state the game halts every symbol itself); it can be resumed until the game is over.
const HALTED_BECAUSE = {
  lobby: "halted until the game starts",
  paused: "halted while the game is paused",
  round_over: "halted until the next round",
  game_over: "closed: the game is over",
};

function symbolControl(m, state) {
  const mine = m.heldBy === "instructor";
  const usable = mine ? state !== "game_over" : state === "running" || state === "paused";
  let why = "trading";
  if (mine) why = "halted by you";
  else if (m.heldBy === "scenario") why = "halted by the scenario";
  else if (m.halted) why = HALTED_BECAUSE[state] || "halted";
  return el("span", { class: "hold" },
    el("button", { class: mine ? "secondary" : "danger", text: `${mine ? "Resume" : "Halt"} ${m.symbol}`,
      disabled: !usable, title: usable ? null : state === "game_over" ? "The game is over" : "No round in play: nothing to halt",
      onclick: () => hold(m.symbol, !mine) }),
    " ", el("span", { class: "muted", text: why }), " ");
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
  setText("clock", s.secondsLeft != null ? `${Math.ceil(s.secondsLeft)} s left` : s.state === "game_over" ? "game over" : "");
  setText("join-code", o.joinCode); setText("join-url", o.joinUrl || "");
  setText("banner", s.message);
  $("reveal").checked = s.revealed;
  mountViews(s.symbols.map((m) => m.symbol));
  $("symbols").replaceChildren(...s.symbols.map((m) => symbolControl(m, s.state)));
  const final = o.leaderboardScope === "game";
  setText("board-title", final ? "Final standings: the whole game" : "Leaderboard");
  setText("board-note", final
    ? "Every round played: equity is the starting balance plus each round's profit, return % that profit over the starting balance."
    : s.round ? "This round, since it started." : "");
  fillTable($("board"), o.leaderboard, (r) => [r.rank, r.name, money(r.equity), r.returnPct, r.maxDrawdownPct,
    r.liquidations, r.adlHits, money(r.fees)]);
  fillTable($("students"), o.students, (r) => {
    const p = r.positions[0];
    return [r.name, p ? `${p.qty} ${p.symbol}` : "0", p ? p.liquidationPrice ?? "–" : "–", p ? p.mark : "–", `${r.marginRatioPct} %`, accountButtons(r)];
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
// A nickname that already has a slip gets no second account (the server skips it):
// the slips shown stay those of the last import that made any, and the note says who
// was skipped. The button waits for the answer, so a double click sends one roster.
function rosterNote(made, had) {
  let note = `${made} new ${made === 1 ? "slip" : "slips"}.`;
  if (had.length) {
    note += ` ${had.length} already had ${had.length === 1 ? "a slip" : "slips"} (${had.join(", ")}):`
      + " no new account, their codes are on the slips made before.";
  }
  return note;
}

$("import").addEventListener("click", async () => {
  setText("roster-error", ""); setText("roster-note", "");
  $("import").disabled = true;
  try {
    const r = await adm("/class/api/admin/roster", { method: "POST", body: $("roster").value });
    if (r.slips.length) {
      $("slips").replaceChildren(...r.slips.map((s) => el("div", { class: "slip" },
        el("div", { text: s.nickname + (s.team ? ` (team ${s.team})` : "") }),
        el("div", { text: `Open ${r.joinUrl || "/class/"}` }),
        el("div", { text: "Personal code:" }), el("strong", { text: s.personalCode }))));
    }
    setText("roster-note", rosterNote(r.slips.length, r.alreadyHad || []));
  } catch (e) { setText("roster-error", e.message); }
  finally { $("import").disabled = false; }
  refresh();
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
