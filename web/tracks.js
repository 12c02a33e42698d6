// Language tracks (protocol 2): what a viewer of one language shows, and how each
// caption says where its words came from. Pure logic: no DOM.
//
// Finals: the `track` messages of the chosen language. Partials: the floor's when it
// speaks that language (all of them for "original"), the booth's of that language
// while the floor does not speak it (so a booth relaying the floor is not doubled).

export const SOURCE_LABELS = {
  floor: { full: "speaker", compact: "" },
  interpretation: { full: "interpretation", compact: "interpreter" },
  mt: { full: "machine translation", compact: "MT" },
};

const SOURCE_TITLES = {
  floor: "The speaker's own words",
  interpretation: "The interpreter's words",
  mt: "Machine translation",
};

// The page's language choice ("orig" for the words as spoken) as a track name.
export function trackName(lang) {
  return lang === "orig" ? "original" : lang;
}

// How track caption `c` is labelled: null for the original track (all the speaker's words).
export function sourceLabel(c, compact) {
  const label = SOURCE_LABELS[c.source];
  if (c.lang === "original" || !label) return null;
  const text = compact ? label.compact : label.full;
  if (!text) return null;
  const engine = c.source === "mt" && c.mt_engine ? ` (${c.mt_engine})` : "";
  return { text, title: `${SOURCE_TITLES[c.source]}${engine}`, mt: c.source === "mt" };
}

// What the server announced (channels, tracks) and what has been shown of each track.
export class Tracks {
  constructor() {
    this.enabled = false;
    this.names = []; // the tracks the relay sends
    this.floor = "floor";
    this.booths = new Map(); // channel name -> language
    this.states = new Map(); // channel name -> source state
    this.floorLang = null; // the language the floor spoke last
    this.history = new Map(); // track -> its captions shown so far
  }

  hello(msg) {
    this.names = Array.isArray(msg.tracks) ? msg.tracks : [];
    this.enabled = this.names.length > 0;
    this.floor = typeof msg.channel === "string" ? msg.channel : "floor";
    this.booths.clear();
    for (const ch of Array.isArray(msg.channels) ? msg.channels : []) {
      if (ch && typeof ch.lang === "string") this.booths.set(ch.name, ch.lang);
      if (ch && typeof ch.state === "string") this.states.set(ch.name, ch.state);
    }
  }

  // A partial or final of a channel: the floor's tells which language it speaks.
  note(msg) {
    if (msg.channel === this.floor && msg.text) this.floorLang = msg.lang;
  }

  // Whether the page's language choice has a track to follow.
  follows(lang) {
    return this.names.includes(trackName(lang));
  }

  // A message of the floor (protocol 1 messages may lack a channel).
  isFloor(msg) {
    return msg.channel === undefined || msg.channel === this.floor;
  }

  partialWanted(msg, track) {
    if (msg.channel === this.floor) return track === "original" || msg.lang === track;
    return this.booths.get(msg.channel) === track && this.floorLang !== track;
  }

  keep(c) {
    if (!this.history.has(c.lang)) this.history.set(c.lang, []);
    this.history.get(c.lang).push(c);
  }

  shown(track) {
    return this.history.get(track) || [];
  }

  // True while the booth of `track` has lost its source (viewers get MT meanwhile).
  boothDown(track) {
    for (const [name, lang] of this.booths) {
      if (lang === track) return ["reconnecting", "ended"].includes(this.states.get(name));
    }
    return false;
  }
}
