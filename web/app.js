// LiveTranslate captions: follows one session over the edge's WebSocket.
//
// Every frame is {contract, version, subject, seq, data}. Lines are keyed by
// utterance id; transcripts, translations and speaker turns are joined onto
// them here, in whatever order they arrive. `seq` is the stream sequence:
// a reconnect asks for `?after=<last seq>` so nothing is missed or repeated.
"use strict";

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10000;
const INVALID_REQUEST = 1008; // the edge refused the session id: retrying cannot help

const form = document.getElementById("session-form");
const input = document.getElementById("session-id");
const button = document.getElementById("connect");
const stateEl = document.getElementById("state");
const captions = document.getElementById("captions");
const placeholder = document.getElementById("placeholder");
const figures = document.getElementById("figures");

const follow = {
  sessionId: null,
  socket: null,
  lastSeq: 0,
  retryMs: RETRY_FIRST_MS,
  retryTimer: null,
};

/** utterance id -> {el, source, speaker, final, partial, translations, ...} */
const lines = new Map();

// ---- connection -----------------------------------------------------------

function showState(state, text) {
  stateEl.dataset.state = state;
  stateEl.textContent = text;
  refreshButton();
}

/** The button disconnects from the session shown in the field, else connects to it. */
function refreshButton() {
  const following = follow.sessionId !== null && follow.sessionId === input.value.trim();
  button.textContent = following ? "Disconnect" : "Connect";
}

function socketUrl(sessionId, after) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = after > 0 ? `?after=${after}` : "";
  return `${scheme}://${location.host}/ws/sessions/${encodeURIComponent(sessionId)}${query}`;
}

function start(sessionId) {
  stop();
  clearCaptions();
  follow.sessionId = sessionId;
  follow.lastSeq = 0;
  follow.retryMs = RETRY_FIRST_MS;
  const url = new URL(location.href);
  url.searchParams.set("session", sessionId);
  history.replaceState(null, "", url);
  open();
}

function stop() {
  clearTimeout(follow.retryTimer);
  follow.retryTimer = null;
  follow.sessionId = null;
  if (follow.socket) {
    const socket = follow.socket;
    follow.socket = null;
    socket.close(1000, "viewer left");
  }
  showState("idle", "Not connected");
}

function open() {
  const sessionId = follow.sessionId;
  showState("connecting", `Connecting to session ${sessionId}…`);
  const socket = new WebSocket(socketUrl(sessionId, follow.lastSeq));
  follow.socket = socket;
  socket.addEventListener("open", () => {
    follow.retryMs = RETRY_FIRST_MS;
    showState("live", `Live: session ${sessionId}`);
  });
  socket.addEventListener("message", (event) => receive(event.data));
  socket.addEventListener("close", (event) => closed(socket, event));
}

function closed(socket, event) {
  if (socket !== follow.socket) return; // an old socket we closed on purpose
  follow.socket = null;
  if (event.code === INVALID_REQUEST) {
    follow.sessionId = null;
    showState("refused", `Refused: ${event.reason || "invalid request"}`);
    return;
  }
  const delayMs = follow.retryMs;
  follow.retryMs = Math.min(follow.retryMs * 2, RETRY_MAX_MS);
  const seconds = Math.max(1, Math.round(delayMs / 1000));
  showState("reconnecting", `Connection lost; reconnecting in ${seconds} s…`);
  follow.retryTimer = setTimeout(open, delayMs);
}

function receive(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return;
  }
  // The edge never repeats a sequence; this guards the page if it ever did.
  if (typeof frame.seq !== "number" || frame.seq <= follow.lastSeq) return;
  follow.lastSeq = frame.seq;
  const show = SHOW[frame.contract];
  if (show) show(frame.data);
}

// ---- captions -------------------------------------------------------------

const SHOW = {
  transcript: showTranscript,
  translation: showTranslation,
  speaker_turn: showSpeaker,
  analytics_snapshot: showFigures,
};

function clearCaptions() {
  lines.clear();
  captions.replaceChildren(placeholder);
  placeholder.hidden = false;
  figures.textContent = "";
}

function element(tag, className, attributes = {}) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, value);
  return el;
}

function lineFor(utteranceId) {
  let line = lines.get(utteranceId);
  if (line) return line;
  const el = element("article", "line", { "data-utterance": utteranceId });
  const source = element("p", "source");
  const speaker = element("span", "speaker");
  speaker.hidden = true;
  const final = element("span", "final");
  // Partials change many times a second; screen readers hear the final only.
  const partial = element("span", "partial", { "aria-hidden": "true" });
  const translations = element("ul", "translations");
  source.append(speaker, final, partial);
  el.append(source, translations);
  line = {
    el, source, speaker, final, partial, translations,
    startS: Infinity, revision: -1, isFinal: false,
    speakers: [], translationItems: new Map(),
  };
  lines.set(utteranceId, line);
  placeholder.hidden = true;
  captions.append(el);
  return line;
}

/** Keep lines in speech order: a line learns its start time from its transcript. */
function place(line) {
  let next = null;
  for (const other of lines.values()) {
    if (other !== line && other.startS > line.startS && other.el.isConnected) {
      if (next === null || other.startS < next.startS) next = other;
    }
  }
  if (next === null) {
    if (captions.lastElementChild !== line.el) captions.append(line.el);
  } else if (line.el.nextElementSibling !== next.el) {
    captions.insertBefore(line.el, next.el);
  }
}

function keepingScroll(update) {
  const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  update();
  if (atBottom) window.scrollTo({ top: document.body.scrollHeight });
}

function showTranscript(t) {
  keepingScroll(() => {
    const line = lineFor(t.utterance_id);
    // A partial may arrive late or be skipped; the final always wins.
    if (line.isFinal || (t.kind === "partial" && t.revision < line.revision)) return;
    line.revision = t.revision;
    if (t.language) line.source.lang = t.language;
    if (line.startS !== t.start_s) {
      line.startS = t.start_s;
      place(line);
    }
    if (t.kind === "final") {
      line.isFinal = true;
      line.partial.textContent = "";
      line.final.textContent = t.text;
      line.el.hidden = !t.text && line.translationItems.size === 0;
    } else {
      line.partial.textContent = t.text;
    }
  });
}

function showTranslation(t) {
  keepingScroll(() => {
    // A translation may cover several finals; it goes under the last of them.
    const line = lineFor(t.utterance_ids[t.utterance_ids.length - 1]);
    const key = `${t.target_language}:${t.utterance_ids.join(",")}`;
    let item = line.translationItems.get(key);
    if (item && item.dataset.kind === "final" && t.kind === "partial") return;
    if (!item) {
      item = element("li", "", { lang: t.target_language });
      line.translationItems.set(key, item);
      line.translations.append(item);
    }
    item.dataset.kind = t.kind;
    item.classList.toggle("partial", t.kind === "partial");
    const tag = element("span", "lang-tag", { "aria-label": `${t.target_language}:` });
    tag.textContent = t.target_language;
    item.replaceChildren(tag, document.createTextNode(` ${t.text}`));
    line.el.hidden = false;
  });
}

function showSpeaker(turn) {
  const line = lineFor(turn.utterance_id);
  if (!line.speakers.includes(turn.speaker)) line.speakers.push(turn.speaker);
  line.speaker.textContent = `${line.speakers.join(", ")}:`;
  line.speaker.hidden = false;
}

function showFigures(snapshot) {
  const wpm = Math.round(snapshot.words_per_minute);
  const parts = [
    `${snapshot.utterances} utterances`,
    `${snapshot.words} words`,
    `${wpm} words per minute`,
  ];
  if (snapshot.final) parts.push("session ended");
  figures.textContent = parts.join(" · ");
}

// ---- page -----------------------------------------------------------------

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const sessionId = input.value.trim();
  if (follow.sessionId !== null && follow.sessionId === sessionId) {
    stop();
    return;
  }
  if (!input.reportValidity()) return;
  start(sessionId);
});

input.addEventListener("input", refreshButton);

const fromUrl = new URLSearchParams(location.search).get("session");
if (fromUrl) {
  input.value = fromUrl;
  // A shared link goes straight to the captions.
  if (input.checkValidity()) start(fromUrl);
}
