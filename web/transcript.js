// Caption text in a chosen language, and transcript files (TXT, SRT, WebVTT).
// Pure functions: no DOM, easy to test.

export const ORIGINAL = "orig";

// What to show for caption `c` in `lang`: its text, the language of that text,
// and the machine-translation engine when the text is machine translated.
export function captionText(c, lang) {
  if (lang === ORIGINAL || lang === c.lang) {
    return { text: c.text, lang: c.lang, mt: null };
  }
  const translated = c.translations ? c.translations[lang] : undefined;
  if (typeof translated === "string" && translated !== "") {
    const engine = c.mt && typeof c.mt[lang] === "string" ? c.mt[lang] : null;
    return { text: translated, lang, mt: engine };
  }
  return { text: c.text, lang: c.lang, mt: null };
}

function oneLine(text) {
  return String(text).replace(/\s+/g, " ").trim();
}

function pad(n, width) {
  return String(n).padStart(width, "0");
}

// Seconds as H:MM:SS (or M:SS under an hour) for display.
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}:${pad(m, 2)}:${pad(s % 60, 2)}` : `${m}:${pad(s % 60, 2)}`;
}

// Seconds as HH:MM:SS<sep>mmm for subtitle files.
export function timestamp(seconds, sep) {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const h = Math.floor(ms / 3600000);
  const m = Math.floor((ms % 3600000) / 60000);
  const s = Math.floor((ms % 60000) / 1000);
  return `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}${sep}${pad(ms % 1000, 3)}`;
}

// Cue times that always run forward, even if a caption's end is missing or early.
function cueTimes(c) {
  const start = Number(c.start) || 0;
  const end = Number(c.end) > start ? Number(c.end) : start + 1;
  return [start, end];
}

export function toTxt(finals, lang) {
  return finals
    .map((c) => `[${clock(c.start)}] ${oneLine(captionText(c, lang).text)}`)
    .join("\n") + "\n";
}

export function toSrt(finals, lang) {
  return finals
    .map((c, i) => {
      const [start, end] = cueTimes(c);
      const text = oneLine(captionText(c, lang).text);
      return `${i + 1}\n${timestamp(start, ",")} --> ${timestamp(end, ",")}\n${text}\n`;
    })
    .join("\n");
}

function escapeVtt(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function toVtt(finals, lang) {
  const cues = finals.map((c) => {
    const [start, end] = cueTimes(c);
    const text = escapeVtt(oneLine(captionText(c, lang).text));
    return `${timestamp(start, ".")} --> ${timestamp(end, ".")}\n${text}\n`;
  });
  return ["WEBVTT\n", ...cues].join("\n");
}

export const FORMATS = {
  txt: { render: toTxt, mime: "text/plain;charset=utf-8" },
  srt: { render: toSrt, mime: "application/x-subrip;charset=utf-8" },
  vtt: { render: toVtt, mime: "text/vtt;charset=utf-8" },
};
