// The native WebSocket protocol (docs/protocol.md) from the browser: requests with ids,
// stream handlers, reconnection with back-off, and re-logon + re-subscribe after it.

export class ApiError extends Error {
  constructor(code, msg) {
    super(`${code} ${msg}`);
    this.code = code;
    this.msg = msg;
  }
}

export class Conn {
  constructor(url) {
    this.url = url;
    this.worker = null;
    this.open = false;
    this.nextId = 1;
    this.pending = new Map();
    this.handlers = new Map(); // stream name → set of callbacks
    this.streams = new Set(); // what we want to be subscribed to
    this.token = null; // session token (kept in memory / sessionStorage only)
    this.state = "connecting";
    this.onState = () => {};
    this.onOpen = async () => {};
    this.messages = 0;
    this.handleMs = 0; // time spent handling incoming messages (for the benchmark)
    this.backoff = 500;
    this.connect();
  }

  setState(s, detail = "") {
    this.state = s;
    this.onState(s, detail);
  }

  connect() {
    this.setState("connecting");
    this.open = false;
    if (!this.worker) {
      // the socket itself lives in a worker that hands messages over in batches
      this.worker = new Worker("/static/wsworker.js");
      this.worker.onmessage = (ev) => this.fromWorker(ev.data);
    }
    this.worker.postMessage({ type: "connect", url: this.url });
  }

  async opened() {
    this.open = true;
    this.backoff = 500;
    this.setState("open");
    try {
      if (this.token) await this.call("session.logon", { token: this.token });
    } catch (e) {
      this.token = null;
      this.onLogonLost?.(e);
    }
    const names = [...this.streams].filter((s) => s !== "account" || this.token);
    if (names.length) {
      try {
        await this.call("subscribe", { streams: names });
      } catch (e) {
        console.warn("resubscribe failed", e);
      }
    }
    await this.onOpen();
  }

  closed() {
    this.open = false;
    for (const { reject } of this.pending.values()) reject(new ApiError(-1, "connection closed"));
    this.pending.clear();
    this.setState("reconnecting", `retry in ${(this.backoff / 1000).toFixed(1)} s`);
    setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, 5000);
  }

  fromWorker(m) {
    if (m.type === "batch") {
      const t = performance.now();
      for (const text of m.msgs) this.receive(text);
      this.handleMs += performance.now() - t;
    } else if (m.type === "open") {
      this.opened();
    } else if (m.type === "close") {
      this.closed();
    }
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.stream !== undefined) {
      this.messages++;
      const hs = this.handlers.get(msg.stream);
      if (hs) for (const h of hs) h(msg.data);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.status === 200) p.resolve(msg.result);
    else p.reject(new ApiError(msg.error?.code ?? -1000, msg.error?.msg ?? "error"));
  }

  call(method, params) {
    if (!this.open) return Promise.reject(new ApiError(-1, "not connected"));
    const id = this.nextId++;
    const body = { id, method };
    if (params && Object.keys(params).length) body.params = params;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: "send", text: JSON.stringify(body) });
    });
  }

  on(stream, fn) {
    if (!this.handlers.has(stream)) this.handlers.set(stream, new Set());
    this.handlers.get(stream).add(fn);
  }

  async subscribe(names) {
    for (const n of names) this.streams.add(n);
    if (this.state === "open") return this.call("subscribe", { streams: names });
    return null;
  }

  async unsubscribe(names) {
    for (const n of names) this.streams.delete(n);
    if (this.state === "open") return this.call("unsubscribe", { streams: names });
    return null;
  }

  /** Unsubscribe and subscribe again: a book stream then starts with a fresh snapshot. */
  async resubscribe(name) {
    if (this.state !== "open") return;
    await this.call("unsubscribe", { streams: [name] });
    await this.call("subscribe", { streams: [name] });
  }
}
