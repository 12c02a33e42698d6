// The caption WebSocket: reconnects with backoff and jitter, resumes with `since`,
// and drops duplicates so every final is delivered once, in order.

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 30000;

export class CaptionConnection {
  // onMessage(msg) gets hello/partial/final/track/status/end messages;
  // onState(state, detail) gets "connecting" | "live" | "waiting" | "ended".
  constructor(url, { onMessage, onState }) {
    this.url = url;
    this.onMessage = onMessage;
    this.onState = onState;
    this.ws = null;
    this.session = null;
    this.lastSeq = null;
    this.attempt = 0;
    this.timer = null;
    this.ended = false;
    window.addEventListener("online", () => this.retryNow());
  }

  start() {
    this.connect();
  }

  socketUrl() {
    const url = new URL(this.url);
    if (this.session !== null && this.lastSeq !== null) {
      url.searchParams.set("since", String(this.lastSeq));
      url.searchParams.set("session", this.session);
    }
    return url.toString();
  }

  connect() {
    this.timer = null;
    this.onState("connecting", "");
    const ws = new WebSocket(this.socketUrl());
    this.ws = ws;
    ws.addEventListener("message", (event) => {
      if (this.ws === ws) this.receive(event.data);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (!this.ended) this.scheduleRetry(event.code);
    });
  }

  receive(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (!msg || typeof msg.type !== "string") return;
    if (msg.type === "hello") {
      this.attempt = 0;
      if (msg.session !== this.session) {
        this.session = msg.session;
        this.lastSeq = 0;
      }
      this.onState("live", "");
    } else if (msg.type === "final" || msg.type === "track") {
      if (msg.seq <= this.lastSeq) return; // already have it (finals and tracks share one seq)
      msg.gap = this.lastSeq > 0 && msg.seq > this.lastSeq + 1;
      this.lastSeq = msg.seq;
    } else if (msg.type === "partial") {
      if (msg.seq <= this.lastSeq) return; // its final is already here
    } else if (msg.type === "end") {
      this.ended = true;
      this.onState("ended", msg.reason || "");
    }
    this.onMessage(msg);
  }

  scheduleRetry(code) {
    // Full jitter spreads thousands of viewers reconnecting after a restart.
    const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt = Math.min(this.attempt + 1, 10);
    this.onState("waiting", { code, delayMs: delay });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  retryNow() {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.connect();
  }
}
