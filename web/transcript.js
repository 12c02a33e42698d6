// Caption text in a chosen language, and where to download the transcript.
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

// The server renders transcript files (TXT, SRT, WebVTT) from the event's stored
// transcript, with the same rules as `relay export`: one implementation, so the
// browser composes none. Relative, so it works under any path prefix.
export function downloadHref(format, lang) {
  return `transcript.${format}?lang=${encodeURIComponent(lang)}`;
}
