// A stock hls.js player, as an event's site would embed it, pointed at ?src=MASTER; it picks the
// subtitle track ?lang=fr and records what a test needs: the tracks offered, every cue of the
// shown track, the cues on screen and when, and where each video fragment sits on the media
// timeline (so a test can turn media times back into the stream's own times).
"use strict";
const params = new URLSearchParams(location.search);
const video = document.getElementById("video");
const record = { tracks: [], chosen: null, showing: [], cues: {}, shown: {}, fragments: {}, errors: [], ended: false };
window.record = record;

const hls = new Hls({ liveSyncDuration: Number(params.get("behind") || 14), liveMaxLatencyDuration: 60 });
hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, (_event, data) => {
  record.tracks = data.subtitleTracks.map((track) => ({ name: track.name, lang: track.lang }));
  // What a viewer does in the player's menu, once it lists them: pick the language.
  setTimeout(() => {
    const wanted = hls.subtitleTracks.findIndex((track) => track.lang === params.get("lang"));
    if (wanted >= 0) {
      hls.subtitleDisplay = true;
      hls.subtitleTrack = wanted;
      record.chosen = wanted;
    }
  }, 0);
});
hls.on(Hls.Events.SUBTITLE_TRACK_SWITCH, (_event, data) => { record.switched = data.id; });
hls.on(Hls.Events.FRAG_BUFFERED, (_event, data) => {
  if (data.frag.type === "main") record.fragments[data.frag.sn] = [data.frag.start, data.frag.end];
});
hls.on(Hls.Events.ERROR, (_event, data) => {
  if (data.fatal) record.errors.push(data.details);
  else (record.warnings = record.warnings || []).push(data.details);
});
video.addEventListener("ended", () => { record.ended = true; });
hls.loadSource(params.get("src"));
hls.attachMedia(video);
video.play().catch((error) => record.errors.push(String(error)));

setInterval(() => {
  record.showing = [...video.textTracks].filter((track) => track.mode === "showing").map((track) => track.language);
  for (const track of video.textTracks) {
    if (track.mode !== "showing" || track.language !== params.get("lang")) continue;
    for (const cue of track.cues || []) {
      record.cues[cue.id || `${cue.startTime}`] = { start: cue.startTime, end: cue.endTime, text: cue.text };
    }
    for (const cue of track.activeCues || []) {
      const key = cue.id || `${cue.startTime}`;
      if (!(key in record.shown)) record.shown[key] = video.currentTime;
    }
  }
  record.currentTime = video.currentTime;
}, 50);
