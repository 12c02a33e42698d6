// DOM views: the live caption lines, the transcript, and the delay line that holds
// captions back. Caption text is only ever set with textContent, never as HTML.

import { sourceLabel } from "./tracks.js";
import { captionText } from "./transcript.js";

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

// What caption `c` shows in `lang`: its text, that text's language, and its label
// (machine translation; for a track caption also interpretation or the speaker's words).
function shownText(c, lang, compact) {
  if (c.type === "track") {
    const textLang = c.lang === "original" ? c.floor_lang : c.lang;
    return { text: c.text, lang: textLang, label: sourceLabel(c, compact), source: c.source };
  }
  const shown = captionText(c, lang);
  const label = shown.mt
    ? { text: compact ? "MT" : "machine translation", title: `Machine translation (${shown.mt})`, mt: true }
    : null;
  return { text: shown.text, lang: shown.lang, label, source: shown.mt ? "mt" : null };
}

// Fill `el` with caption `c` shown in `lang`. The label is glued to the last word
// (so it never sits alone on a line) and drawn from a data attribute, so the
// caption's textContent stays exactly the caption.
function fill(el, c, lang, compact) {
  const shown = shownText(c, lang, compact);
  const text = document.createElement("span");
  text.className = "text";
  el.lang = shown.lang;
  if (shown.source) el.dataset.source = shown.source;
  else delete el.dataset.source;
  el.replaceChildren(text);
  if (!shown.label) {
    text.textContent = shown.text;
    return;
  }
  const cut = shown.text.trimEnd().lastIndexOf(" ") + 1;
  const last = document.createElement("span");
  last.className = "last";
  last.textContent = shown.text.slice(cut);
  const label = document.createElement("span");
  label.className = shown.label.mt ? "mt" : `source ${shown.source}`;
  label.dataset.label = shown.label.text;
  label.title = shown.label.title;
  last.append(label);
  text.append(shown.text.slice(0, cut), last);
}

// Partials and the finals that replace them are matched by channel and id (booths
// number their utterances independently of the floor); track captions never replace one.
function captionKey(c) {
  return `${c.type === "track" ? "track" : c.channel || ""}/${c.id}`;
}

// The big roll-up caption area: recent finals, then the partial in progress.
export class LiveView {
  constructor(container, { maxLines, compact }) {
    this.container = container;
    this.maxLines = maxLines;
    this.compact = compact;
    this.lang = "en";
    this.partial = null; // the element showing the partial, if any
    this.captions = new WeakMap();
  }

  line(c, kind) {
    const el = document.createElement("p");
    el.className = `line ${kind}`;
    return el;
  }

  show(el, c) {
    this.captions.set(el, c);
    el.dataset.id = c.id;
    el.dataset.key = captionKey(c);
    fill(el, c, this.lang, this.compact);
  }

  showPartial(c) {
    if (this.partial === null) {
      this.partial = this.line(c, "partial");
      this.container.append(this.partial);
    }
    this.show(this.partial, c);
    this.trim();
  }

  showFinal(c) {
    let el;
    if (this.partial !== null && this.partial.dataset.key === captionKey(c)) {
      el = this.partial; // becomes final in place, so nothing jumps
      this.partial = null;
      el.className = "line final";
    } else {
      el = this.line(c, "final");
      this.container.insertBefore(el, this.partial);
    }
    this.show(el, c);
    this.trim();
  }

  // Remove the partial (only the one of caption `c`'s channel and id, when given).
  clearPartial(c = null) {
    if (this.partial === null) return;
    if (c !== null && this.partial.dataset.key !== captionKey(c)) return;
    this.partial.remove();
    this.partial = null;
  }

  // Show these finals only (the last lines of another track), with no partial.
  reset(finals) {
    this.clearPartial();
    this.container.replaceChildren();
    for (const c of finals.slice(-this.maxLines)) this.showFinal(c);
  }

  trim() {
    while (this.container.children.length > this.maxLines) {
      this.container.firstElementChild.remove();
    }
  }

  setLang(lang) {
    this.lang = lang;
    for (const el of this.container.children) fill(el, this.captions.get(el), lang, this.compact);
  }
}

// The scrollable transcript of every final shown so far; follows the end unless
// the reader scrolled up.
export class TranscriptView {
  constructor(list, jump) {
    this.list = list;
    this.jump = jump;
    this.lang = "en";
    this.captions = new WeakMap();
    this.speaker = ""; // the name shown last: a new one gets a line of its own
    list.addEventListener("scroll", () => {
      if (this.atEnd()) this.jump.hidden = true;
    });
    jump.addEventListener("click", () => this.scrollToEnd());
  }

  atEnd() {
    const { scrollTop, scrollHeight, clientHeight } = this.list;
    return scrollHeight - scrollTop - clientHeight < 40;
  }

  scrollToEnd() {
    this.list.scrollTop = this.list.scrollHeight;
    this.jump.hidden = true;
  }

  render(li) {
    const c = this.captions.get(li);
    const time = document.createElement("time");
    time.textContent = timeOfDay.format(new Date((c.sent ?? Date.now() / 1000) * 1000));
    const body = document.createElement("span");
    fill(body, c, this.lang, false);
    li.lang = body.lang;
    body.removeAttribute("lang");
    li.replaceChildren(time, " ", body);
  }

  // The list items of caption `c`: a note first when captions were missed before it,
  // and the speaker's name when the floor changed hands.
  items(c) {
    const made = [];
    if (c.gap) {
      const note = document.createElement("li");
      note.className = "gap";
      note.textContent = "… some captions were missed here …";
      made.push(note);
    }
    const speaker = typeof c.speaker === "string" ? c.speaker : "";
    if (speaker && speaker !== this.speaker) {
      const name = document.createElement("li");
      name.className = "speaker";
      name.textContent = speaker;
      made.push(name);
    }
    this.speaker = speaker; // after an unnamed stretch, the same name is a new turn (as in the exports)
    const li = document.createElement("li");
    li.dataset.seq = String(c.seq);
    this.captions.set(li, c);
    this.render(li);
    made.push(li);
    return made;
  }

  add(c) {
    const follow = this.atEnd();
    this.list.append(...this.items(c));
    if (follow) this.scrollToEnd();
    else this.jump.hidden = false;
  }

  // Show these finals only (another track), from the start: built off-screen, in one go.
  reset(finals) {
    this.speaker = "";
    const fragment = document.createDocumentFragment();
    for (const c of finals) fragment.append(...this.items(c));
    this.list.replaceChildren(fragment);
    this.scrollToEnd();
  }

  note(text) {
    const li = document.createElement("li");
    li.className = "gap";
    li.textContent = text;
    this.list.append(li);
  }

  setLang(lang) {
    this.lang = lang;
    for (const li of this.list.children) {
      if (this.captions.has(li)) this.render(li);
    }
  }
}

// Holds messages back by the viewer's delay, releasing them in arrival order.
// A replayed caption that is already `age` seconds old waits only what remains.
export class DelayLine {
  constructor(release) {
    this.release = release;
    this.items = [];
    this.delayMs = 0;
    this.timer = null;
  }

  push(msg, ageS = 0) {
    this.items.push({ due: performance.now() - ageS * 1000, msg });
    this.pump();
  }

  setDelay(seconds) {
    this.delayMs = seconds * 1000;
    this.pump();
  }

  pump() {
    clearTimeout(this.timer);
    this.timer = null;
    const now = performance.now();
    while (this.items.length > 0 && this.items[0].due + this.delayMs <= now) {
      this.release(this.items.shift().msg);
    }
    if (this.items.length > 0) {
      this.timer = setTimeout(() => this.pump(), this.items[0].due + this.delayMs - now);
    }
  }
}
