// Shared helpers for the classroom pages. Everything from the network is written with
// textContent (never innerHTML), so a nickname like "<img onerror=...>" stays text.

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    // null, undefined or false: no attribute (setAttribute would write "null", and a
    // boolean attribute such as disabled is on whatever its text)
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

export function $(id) { return document.getElementById(id); }

export function setText(id, text) { const e = $(id); if (e) e.textContent = text ?? ""; }

export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    if (typeof body === "string") { init.body = body; init.headers["Content-Type"] = "text/csv"; }
    else { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  }
  const r = await fetch(path, init);
  let data = null;
  try { data = await r.json(); } catch { data = null; }
  if (!r.ok) {
    const err = new Error((data && data.msg) || `HTTP ${r.status}`);
    err.code = data && data.code; err.status = r.status;
    throw err;
  }
  return data;
}

export function fillTable(tbody, rows, cells, rowClass) {
  tbody.replaceChildren(...rows.map((r) => {
    const tr = el("tr", rowClass ? { class: rowClass(r) } : {});
    for (const c of cells(r)) tr.append(c instanceof Node ? el("td", {}, c) : el("td", { text: String(c ?? "") }));
    return tr;
  }));
}

// A minimal client of margincall's WebSocket API: requests by id, streams by name,
// reconnects by itself and calls onOpen again after each reconnect.
export class Socket {
  constructor(url, { onOpen, onStream, onState }) {
    this.url = url; this.onOpen = onOpen; this.onStream = onStream; this.onState = onState || (() => {});
    this.next = 1; this.waiting = new Map(); this.closed = false; this.connect();
  }
  connect() {
    this.onState("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = async () => {
      this.onState("connected");
      try { await this.onOpen(this); } catch (e) { console.warn(e); }
    };
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.stream) { this.onStream(msg.stream, msg.data); return; }
      const w = this.waiting.get(msg.id);
      if (!w) return;
      this.waiting.delete(msg.id);
      if (msg.status === 200) w.resolve(msg.result);
      else { const e = new Error(msg.error ? msg.error.msg : "error"); e.code = msg.error && msg.error.code; w.reject(e); }
    };
    ws.onclose = () => {
      for (const w of this.waiting.values()) w.reject(new Error("connection lost"));
      this.waiting.clear();
      this.onState("disconnected");
      if (!this.closed) setTimeout(() => this.connect(), 1000);
    };
  }
  call(method, params = {}) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) { reject(new Error("not connected")); return; }
      const id = this.next++;
      this.waiting.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }
  close() { this.closed = true; if (this.ws) this.ws.close(); }
}
