// Viewer preferences: remembered in localStorage, overridable from the URL.

const KEY = "relay.viewer.v1";
export const LANGUAGES = ["en", "fr", "es", "orig"];
export const THEMES = ["auto", "dark", "light", "contrast"];
export const SIZES = [0.75, 0.875, 1, 1.25, 1.5, 1.75, 2, 2.5];
export const MAX_DELAY_S = 60;

function defaultLanguage() {
  const primary = (navigator.language || "en").slice(0, 2).toLowerCase();
  return LANGUAGES.includes(primary) ? primary : "en";
}

function clampDelay(value) {
  const n = Math.round(Number(value));
  return Number.isFinite(n) ? Math.min(MAX_DELAY_S, Math.max(0, n)) : 0;
}

function readStored() {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? JSON.parse(raw) : {};
  } catch {
    return {};
  }
}

// Saved preferences, each checked, falling back to defaults.
export function loadPrefs() {
  const stored = readStored();
  return {
    lang: LANGUAGES.includes(stored.lang) ? stored.lang : defaultLanguage(),
    theme: THEMES.includes(stored.theme) ? stored.theme : "auto",
    size: SIZES.includes(stored.size) ? stored.size : 1,
    delay: clampDelay(stored.delay),
  };
}

export function savePrefs(prefs) {
  try {
    localStorage.setItem(KEY, JSON.stringify(prefs));
  } catch {
    // Storage can be disabled (private mode, OBS); preferences then last for the page.
  }
}

// Options given in the page URL: ?overlay=1&lang=fr&delay=20 (not saved).
export function urlOptions(search) {
  const params = new URLSearchParams(search);
  const lang = params.get("lang");
  const delay = params.get("delay");
  return {
    overlay: ["1", "true", "yes"].includes((params.get("overlay") || "").toLowerCase()),
    lang: LANGUAGES.includes(lang) ? lang : null,
    delay: delay === null ? null : clampDelay(delay),
  };
}

export { clampDelay };
