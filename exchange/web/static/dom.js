// Building the page without ever parsing data as HTML: every text goes in through
// textContent (createTextNode), so a nickname like "<img onerror=...>" stays text.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function svg(tag, attrs = {}) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** Set a text only when it changed (patching instead of rebuilding). */
export function setText(el, text) {
  const t = String(text);
  if (el.textContent !== t) el.textContent = t;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
}

export function fmtTime(ns) {
  const d = new Date(Number(BigInt(ns) / 1000000n));
  return d.toISOString().slice(11, 23);
}

export function num(s) {
  const x = Number(s);
  return Number.isFinite(x) ? x : 0;
}

/** "12345.60" → "12,345.60" keeping the given decimals. */
export function fmtNum(s, decimals) {
  const x = num(s);
  const d = decimals ?? (String(s).split(".")[1] || "").length;
  return x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** A fixed set of table rows whose cells are patched in place (no rebuilding). */
export class RowPool {
  constructor(tbody, columns, size) {
    this.tbody = tbody;
    this.rows = [];
    for (let i = 0; i < size; i++) {
      const tr = h("tr");
      const cells = [];
      for (let c = 0; c < columns; c++) {
        const td = h("td");
        tr.append(td);
        cells.push(td);
      }
      tr.hidden = true;
      tbody.append(tr);
      this.rows.push({ tr, cells, cls: "" });
    }
  }

  /** items: arrays of cell texts; cls(item index) gives the row's class. */
  fill(items, rowClass = () => "") {
    for (let i = 0; i < this.rows.length; i++) {
      const r = this.rows[i];
      const item = items[i];
      if (!item) {
        r.tr.hidden = true;
        continue;
      }
      r.tr.hidden = false;
      for (let c = 0; c < r.cells.length; c++) setText(r.cells[c], item[c] ?? "");
      const cls = rowClass(i);
      if (cls !== r.cls) {
        r.tr.className = cls;
        r.cls = cls;
      }
    }
  }
}
