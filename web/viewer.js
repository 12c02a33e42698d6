// Live caption viewer: wires the connection, the views and the controls together.

import { CaptionConnection } from "./connection.js";
import { loadPrefs, savePrefs, urlOptions, SIZES, MAX_DELAY_S, clampDelay } from "./settings.js";
import { Tracks, trackName } from "./tracks.js";
import { downloadHref } from "./transcript.js";
import { DelayLine, LiveView, TranscriptView } from "./views.js";

const $ = (id) => document.getElementById(id);

const options = urlOptions(location.search);
const prefs = loadPrefs();
if (options.lang) prefs.lang = options.lang;
if (options.delay !== null) prefs.delay = options.delay;

let finalsShown = 0; // to mark a new session in a transcript that has captions
const tracks = new Tracks(); // the event's language tracks, when the relay sends them
const floorFinals = []; // the floor's finals, for a language without a track
const status = { conn: "connecting", retryMs: 0, source: "connected", ended: false };

const live = new LiveView($("live-lines"), {
  maxLines: options.overlay ? 2 : 4,
  compact: options.overlay,
});
const transcript = new TranscriptView($("transcript-list"), $("jump"));

function remember() {
  if (!options.overlay) savePrefs(prefs);
}

// ---- status -----------------------------------------------------------------

function statusText() {
  if (status.ended) return "Session ended";
  if (status.conn === "connecting") return "Connecting…";
  if (status.conn === "waiting") {
    return `Disconnected — retrying in ${Math.max(1, Math.round(status.retryMs / 1000))} s`;
  }
  let text = "Live";
  if (status.source === "reconnecting") text = "Live — stream reconnecting…";
  if (status.source === "connecting") text = "Live — waiting for the stream";
  if (status.source === "ended") text = "The livestream has ended; waiting for the next";
  if (text === "Live" && tracks.follows(prefs.lang) && tracks.boothDown(trackName(prefs.lang))) {
    text = "Live — interpretation unavailable; machine translation meanwhile";
  }
  return prefs.delay > 0 ? `${text} · ${prefs.delay} s delay` : text;
}

// For styling and tests: live, source (live but the stream has trouble), connecting, waiting, ended.
function statusState() {
  if (status.ended) return "ended";
  if (status.conn !== "live") return status.conn;
  return status.source === "connected" ? "live" : "source";
}

function renderStatus() {
  const el = $("status");
  el.textContent = statusText();
  el.dataset.state = statusState();
}

// ---- messages ---------------------------------------------------------------

// With tracks: the chosen language's track captions as finals; partials as tracks.js says.
let gapPending = false; // finals were missed: mark the next caption shown
function showTrack(msg, lang) {
  if (msg.type === "partial") {
    if (tracks.partialWanted(msg, lang)) live.showPartial(msg);
  } else if (msg.type === "final") {
    live.clearPartial(msg); // its track caption follows (or already came)
  } else if (msg.type === "track" && msg.lang === lang) {
    if (gapPending) msg.gap = true;
    gapPending = false;
    live.showFinal(msg);
    transcript.add(msg);
  }
}

// Without a track for the chosen language (protocol 1): the floor's finals, translated.
function showFloor(msg) {
  if (msg.type === "partial") {
    live.showPartial(msg);
  } else if (msg.type === "final" && !msg.text) {
    live.clearPartial(); // an empty final withdraws a partial that turned out to be noise
  } else if (msg.type === "final") {
    if (gapPending) msg.gap = true;
    gapPending = false;
    live.showFinal(msg);
    transcript.add(msg);
  }
}

function show(msg) {
  gapPending = gapPending || Boolean(msg.gap);
  if (msg.type === "track") tracks.keep(msg);
  else tracks.note(msg);
  const floor = tracks.isFloor(msg);
  if (floor && msg.type === "final" && msg.text) floorFinals.push(msg);
  if (tracks.follows(prefs.lang)) showTrack(msg, trackName(prefs.lang));
  else if (floor && msg.type !== "track") showFloor(msg); // never a booth's captions
}

const delayLine = new DelayLine(show);
let hello = null;

function receive(msg) {
  switch (msg.type) {
    case "hello":
      if (hello !== null && hello.session !== msg.session && finalsShown > 0) {
        transcript.note("— a new session started —");
      }
      hello = msg;
      tracks.hello(msg);
      status.source = msg.source ? msg.source.state : "connected";
      status.ended = Boolean(msg.ended);
      break;
    case "track":
    case "final": {
      if (msg.text) finalsShown += 1;
      // A final replayed from the backlog is older: it waits only the rest of the delay.
      const replayed = hello !== null && msg.seq <= hello.seq;
      const age = replayed && msg.sent ? Math.max(0, hello.now - msg.sent) : 0;
      delayLine.push(msg, age);
      break;
    }
    case "partial":
      delayLine.push(msg);
      break;
    case "status":
      tracks.states.set(msg.channel, msg.state);
      if (tracks.enabled && !tracks.isFloor(msg)) break; // a booth: only its language's viewers are told
      status.source = msg.state;
      if (msg.state !== "connected") live.clearPartial();
      break;
    case "end":
      status.ended = true;
      live.clearPartial();
      break;
  }
  renderStatus();
}

function connectionState(state, detail) {
  status.conn = state === "ended" ? "live" : state;
  if (state === "ended") status.ended = true;
  if (state === "waiting") status.retryMs = detail.delayMs;
  renderStatus();
}

// ---- controls ---------------------------------------------------------------

function applyTheme() {
  let theme = prefs.theme;
  if (theme === "auto") {
    if (matchMedia("(prefers-contrast: more)").matches) theme = "contrast";
    else theme = matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark";
  }
  document.documentElement.dataset.theme = theme;
}

function applySize() {
  document.documentElement.style.setProperty("--scale", String(prefs.size));
  $("size-value").textContent = `${Math.round(prefs.size * 100)}%`;
  $("size-down").disabled = prefs.size === SIZES[0];
  $("size-up").disabled = prefs.size === SIZES[SIZES.length - 1];
}

function stepSize(step) {
  const i = SIZES.indexOf(prefs.size) + step;
  prefs.size = SIZES[Math.min(SIZES.length - 1, Math.max(0, i))];
  applySize();
  remember();
}

function applyDelay() {
  $("delay").value = String(prefs.delay);
  $("delay-value").textContent = `${prefs.delay} s`;
  delayLine.setDelay(prefs.delay);
  renderStatus();
}

function applyLang() {
  $("lang").value = prefs.lang;
  live.setLang(prefs.lang);
  transcript.setLang(prefs.lang); // (setLang before reset: a floor final is shown in the new language)
  if (tracks.enabled) {
    // Each language is its own track: show what it holds so far.
    const shown = tracks.follows(prefs.lang) ? tracks.shown(trackName(prefs.lang)) : floorFinals;
    live.reset(shown);
    transcript.reset(shown);
  }
  renderStatus();
  // Plain links to the server's export: the file is the whole event, in this language.
  for (const link of document.querySelectorAll("a[data-format]")) {
    link.href = downloadHref(link.dataset.format, prefs.lang);
  }
}

function wireControls() {
  $("lang").addEventListener("change", (e) => {
    prefs.lang = e.target.value;
    applyLang();
    remember();
  });
  $("theme").value = prefs.theme;
  $("theme").addEventListener("change", (e) => {
    prefs.theme = e.target.value;
    applyTheme();
    remember();
  });
  for (const query of ["(prefers-color-scheme: light)", "(prefers-contrast: more)"]) {
    matchMedia(query).addEventListener("change", applyTheme);
  }
  $("size-down").addEventListener("click", () => stepSize(-1));
  $("size-up").addEventListener("click", () => stepSize(1));
  $("delay").max = String(MAX_DELAY_S);
  $("delay").addEventListener("input", (e) => {
    prefs.delay = clampDelay(e.target.value);
    applyDelay();
    remember();
  });
}

// ---- start --------------------------------------------------------------------

if (options.overlay) document.documentElement.classList.add("overlay");
applyTheme();
applySize();
applyLang();
applyDelay();
wireControls();

const socketUrl = new URL("ws", location.href);
socketUrl.protocol = location.protocol === "https:" ? "wss:" : "ws:";
socketUrl.search = "";
new CaptionConnection(socketUrl.toString(), { onMessage: receive, onState: connectionState }).start();
