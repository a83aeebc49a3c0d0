// Join with the game's code and a nickname (or a personal code from a join slip). The
// answer's session token and rejoin secret live in this tab's sessionStorage only.
import { $, api, setText } from "./common.js";

function enter(answer) {
  sessionStorage.setItem("mc.token", answer.token);
  sessionStorage.setItem("mc.nickname", answer.nickname);
  if (answer.rejoin) sessionStorage.setItem("mc.rejoin", answer.rejoin);
  location.assign("/class/play");
}

if (sessionStorage.getItem("mc.rejoin")) location.assign("/class/play");

api("/class/api/status").then((s) => setText("game", s.game)).catch(() => {});

$("join").addEventListener("submit", async (e) => {
  e.preventDefault();
  setText("join-error", "");
  try {
    enter(await api("/class/api/join", { method: "POST", body: {
      code: $("code").value, nickname: $("nickname").value, team: $("team").value || null } }));
  } catch (err) { setText("join-error", err.message); }
});

$("slip").addEventListener("submit", async (e) => {
  e.preventDefault();
  setText("slip-error", "");
  try {
    const secret = $("personal").value.trim();
    const a = await api("/class/api/rejoin", { method: "POST", body: { rejoin: secret } });
    enter({ ...a, rejoin: secret });
  } catch (err) { setText("slip-error", err.message); }
});
