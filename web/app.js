// LiveTranslate: start a captioned session from the microphone, or follow one.
//
// Following: every frame of WS /ws/sessions/{id} is {contract, version,
// subject, seq, data} (services/edge/PROTOCOL.md). Lines are keyed by
// utterance id; transcripts, translations and speaker turns are joined onto
// them here, in whatever order they arrive. `seq` is the stream sequence: a
// reconnect asks for `?after=<last seq>` so nothing is missed or repeated.
//
// Starting: POST api/sessions gives the session id and its two tokens; the
// publish token goes with the microphone's audio, the view token into the
// link for viewers and into this page's own address (in the fragment, which
// browsers never send to a server).
import { Microphone } from "./capture.js";

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10000;
const POLICY_VIOLATION = 1008; // the edge refused the request or token: retrying cannot help

const form = document.getElementById("session-form");
const input = document.getElementById("session-id");
const tokenInput = document.getElementById("view-token");
const button = document.getElementById("connect");
const stateEl = document.getElementById("state");
const captions = document.getElementById("captions");
const placeholder = document.getElementById("placeholder");
const figures = document.getElementById("figures");

const startForm = document.getElementById("start-form");
const startButton = document.getElementById("start-button");
const stopButton = document.getElementById("stop-button");
const micState = document.getElementById("mic-state");
const share = document.getElementById("share");
const shareLink = document.getElementById("share-link");
const copyLink = document.getElementById("copy-link");
const openLink = document.getElementById("open-link");

const follow = {
  sessionId: null,
  token: "",
  socket: null,
  lastSeq: 0,
  retryMs: RETRY_FIRST_MS,
  retryTimer: null,
};

/** utterance id -> {el, source, speaker, final, partial, translations, ...} */
const lines = new Map();

// ---- following a session --------------------------------------------------

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

function socketUrl(sessionId, token, after) {
  const url = new URL(`ws/sessions/${encodeURIComponent(sessionId)}`, document.baseURI);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  if (token) url.searchParams.set("token", token);
  if (after > 0) url.searchParams.set("after", String(after));
  return url.href;
}

function start(sessionId, token) {
  stop();
  clearCaptions();
  follow.sessionId = sessionId;
  follow.token = token;
  follow.lastSeq = 0;
  follow.retryMs = RETRY_FIRST_MS;
  input.value = sessionId;
  tokenInput.value = token;
  history.replaceState(null, "", pageUrl(sessionId, token));
  open();
}

/** This page's address for a session: the token in the fragment, never sent to a server. */
function pageUrl(sessionId, token) {
  const url = new URL(location.href);
  url.search = "";
  url.searchParams.set("session", sessionId);
  url.hash = token ? `token=${encodeURIComponent(token)}` : "";
  return url.href;
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
  const socket = new WebSocket(socketUrl(sessionId, follow.token, follow.lastSeq));
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
  if (event.code === POLICY_VIOLATION) {
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
    // An utterance with several speakers gets one translation per speaker's part,
    // told apart by where it ends.
    const line = lineFor(t.utterance_ids[t.utterance_ids.length - 1]);
    const key = `${t.target_language}:${t.utterance_ids.join(",")}:${t.end_s ?? ""}`;
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
    const who = t.speaker && line.speakers.length > 1 ? ` ${t.speaker}:` : "";
    item.replaceChildren(tag, document.createTextNode(`${who} ${t.text}`));
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
    counted(snapshot.utterances, "utterance"),
    counted(snapshot.words, "word"),
    `${wpm} words per minute`,
  ];
  if (snapshot.final) parts.push("session ended");
  figures.textContent = parts.join(" · ");
}

function counted(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

// ---- starting a session ---------------------------------------------------

const microphone = new Microphone((state, text) => {
  micState.dataset.state = state;
  micState.textContent = text;
  const live = state !== "off" && state !== "failed";
  startButton.disabled = live;
  stopButton.disabled = !live;
});

async function createSession() {
  const targets = [...startForm.querySelectorAll('input[name="target"]:checked')].map(
    (box) => box.value,
  );
  const source = document.getElementById("source-language").value || null;
  const response = await fetch(new URL("api/sessions", document.baseURI), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ source_language: source, target_languages: targets }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `the edge answered ${response.status}`);
  return body;
}

function showShareLink(viewUrl) {
  shareLink.value = viewUrl;
  openLink.href = viewUrl;
  share.hidden = false;
}

startForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  startButton.disabled = true;
  micState.dataset.state = "starting";
  micState.textContent = "Creating a session…";
  let session;
  try {
    session = await createSession();
  } catch (error) {
    micState.dataset.state = "failed";
    micState.textContent = `Could not start a session: ${error.message}`;
    startButton.disabled = false;
    return;
  }
  showShareLink(session.view_url);
  start(session.session_id, session.view_token);
  try {
    await microphone.start(session.session_id, session.publish_token);
  } catch {
    startButton.disabled = false; // the microphone's state says why
  }
});

stopButton.addEventListener("click", () => microphone.stop());

copyLink.addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(shareLink.value);
    copyLink.textContent = "Copied";
  } catch {
    // No clipboard outside a secure context: leave the link selected to copy by hand.
    shareLink.select();
    copyLink.textContent = "Press Ctrl+C to copy";
  }
  setTimeout(() => (copyLink.textContent = "Copy link"), 3000);
});

// ---- page -----------------------------------------------------------------

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const sessionId = input.value.trim();
  if (follow.sessionId !== null && follow.sessionId === sessionId) {
    stop();
    return;
  }
  if (!input.reportValidity()) return;
  start(sessionId, tokenInput.value.trim());
});

input.addEventListener("input", refreshButton);

/** A shared link: ?session=<id>, and the view token as #token= (or ?token=). */
function linkedSession() {
  const query = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.slice(1));
  return {
    sessionId: query.get("session"),
    token: fragment.get("token") || query.get("token") || "",
  };
}

const linked = linkedSession();
if (linked.sessionId) {
  input.value = linked.sessionId;
  // A shared link goes straight to the captions.
  if (input.checkValidity()) {
    document.getElementById("panels").open = false;
    start(linked.sessionId, linked.token);
  }
}
