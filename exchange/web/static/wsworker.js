// The page's WebSocket lives in this worker: in a cascade the server sends thousands of
// small messages a second, and receiving each one on the page's main thread (one task
// per message) would starve its rendering. Here they are collected and handed over in
// batches, at most every FLUSH_MS, so the page handles a few large tasks instead.

const FLUSH_MS = 10;
const MAX_BATCH = 500; // one batch is one task on the page: keep each short
let ws = null;
let queue = [];
let timer = null;

function flush() {
  timer = null;
  for (let i = 0; i < queue.length; i += MAX_BATCH) {
    postMessage({ type: "batch", msgs: queue.slice(i, i + MAX_BATCH) });
  }
  queue = [];
}

onmessage = (ev) => {
  const m = ev.data;
  if (m.type === "connect") {
    ws = new WebSocket(m.url);
    ws.onopen = () => postMessage({ type: "open" });
    ws.onmessage = (e) => {
      queue.push(e.data);
      if (timer === null) timer = setTimeout(flush, FLUSH_MS);
    };
    ws.onclose = () => {
      flush();
      postMessage({ type: "close" });
    };
  } else if (m.type === "send" && ws && ws.readyState === WebSocket.OPEN) {
    ws.send(m.text);
  }
};
