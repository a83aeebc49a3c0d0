// Coalesced rendering: views mark themselves dirty as messages arrive; at most one
// frame every MIN_GAP ms (≈10 frames/s) renders every dirty view once.

const MIN_GAP = 100;
const dirty = new Map(); // name → render function
let scheduled = false;
let last = 0;

export const stats = {
  frames: 0,
  longestFrameMs: 0,
  lastRenderedSeq: 0, // the highest event seq the page has shown
  seenSeq: 0, // the highest event seq received
  renderMs: 0, // total time spent rendering
  slowest: {}, // view name → its longest render (ms)
};

export function noteSeq(seq) {
  if (seq > stats.seenSeq) stats.seenSeq = seq;
}

export function markDirty(name, fn) {
  dirty.set(name, fn);
  if (scheduled) return;
  scheduled = true;
  const wait = Math.max(0, last + MIN_GAP - performance.now());
  setTimeout(() => requestAnimationFrame(frame), wait);
}

function frame() {
  scheduled = false;
  const t0 = performance.now();
  last = t0;
  const seq = stats.seenSeq;
  const jobs = [...dirty];
  dirty.clear();
  for (const [name, fn] of jobs) {
    const t = performance.now();
    try {
      fn();
    } catch (e) {
      console.error("render failed", e);
    }
    const ms = performance.now() - t;
    if (ms > (stats.slowest[name] || 0)) stats.slowest[name] = Math.round(ms);
  }
  stats.lastRenderedSeq = Math.max(stats.lastRenderedSeq, seq);
  stats.frames++;
  const ms = performance.now() - t0;
  stats.renderMs += ms;
  if (ms > stats.longestFrameMs) stats.longestFrameMs = ms;
}
