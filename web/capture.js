// The microphone: capture, 16 kHz PCM frames from the worklet, and the
// socket that carries them to the edge (WS /ws/sessions/{id}/audio).
//
// The socket reconnects after a drop and the edge carries the session on
// from its last stored chunk; frames made meanwhile wait here, up to
// QUEUE_MAX_FRAMES. Closing with 1000 (Stop) tells the edge the audio has
// ended; any other close gives the page the edge's grace period to return.

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5000;
const QUEUE_MAX_FRAMES = 500; // 10 s of 20 ms frames
const POLICY_VIOLATION = 1008; // refused: wrong token, ended session; retrying cannot help
const SAMPLE_RATE_HZ = 16000;
const BYTES_PER_SECOND = SAMPLE_RATE_HZ * 2;

export class Microphone {
  /** `onState(state, text)` hears every change: off, starting, on, reconnecting, failed. */
  constructor(onState) {
    this.onState = onState;
    this.socket = null;
    this.queue = [];
    this.sentBytes = 0;
    this.retryMs = RETRY_FIRST_MS;
    this.retryTimer = null;
    this.stopping = false;
    this.audio = null; // {context, stream, node}
  }

  get running() {
    return this.audio !== null;
  }

  async start(sessionId, publishToken) {
    this.sessionId = sessionId;
    this.token = publishToken;
    this.stopping = false;
    this.sentBytes = 0;
    this.queue = [];
    this.onState("starting", "Starting the microphone…");
    try {
      this.audio = await openAudio((frame) => this.send(frame));
    } catch (error) {
      this.onState("failed", `Microphone unavailable: ${error.message || error.name}`);
      throw error;
    }
    this.connect();
  }

  stop() {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    if (this.audio) {
      this.audio.node.port.onmessage = null;
      this.audio.stream.getTracks().forEach((track) => track.stop());
      this.audio.context.close();
      this.audio = null;
    }
    if (this.socket) {
      // 1000 tells the edge the session's audio has ended.
      this.socket.close(1000, "microphone stopped");
      this.socket = null;
    }
    this.onState("off", "Microphone off");
  }

  connect() {
    const socket = new WebSocket(audioUrl(this.sessionId, this.token));
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.retryMs = RETRY_FIRST_MS;
      for (const frame of this.queue.splice(0)) this.transmit(frame);
      this.showSending();
    });
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  closed(socket, event) {
    if (socket !== this.socket || this.stopping) return;
    this.socket = null;
    if (event.code === POLICY_VIOLATION) {
      this.stop();
      this.onState("failed", `Microphone refused: ${event.reason || "not allowed"}`);
      return;
    }
    const delayMs = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    this.onState("reconnecting", "Microphone connection lost; reconnecting…");
    this.retryTimer = setTimeout(() => this.connect(), delayMs);
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.transmit(frame);
      if (this.sentBytes % BYTES_PER_SECOND < frame.byteLength) this.showSending();
      return;
    }
    this.queue.push(frame);
    // Oldest audio goes first: what is said now matters more than what was.
    if (this.queue.length > QUEUE_MAX_FRAMES) this.queue.shift();
  }

  transmit(frame) {
    this.socket.send(frame);
    this.sentBytes += frame.byteLength;
  }

  showSending() {
    const seconds = Math.floor(this.sentBytes / BYTES_PER_SECOND);
    this.onState("on", `Microphone on: ${seconds} s sent to session ${this.sessionId}`);
  }
}

function audioUrl(sessionId, token) {
  const url = new URL(`ws/sessions/${encodeURIComponent(sessionId)}/audio`, document.baseURI);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("token", token);
  return url.href;
}

async function openAudio(onFrame) {
  const stream = await navigator.mediaDevices.getUserMedia({
    // Raw audio: echo cancellation and noise suppression are tuned for calls
    // and take away sounds a recogniser uses.
    audio: {
      channelCount: 1,
      echoCancellation: false,
      noiseSuppression: false,
      autoGainControl: false,
    },
  });
  try {
    const { context, source } = await connectedContext(stream);
    await context.audioWorklet.addModule(new URL("static/pcm-worklet.js", document.baseURI));
    const node = new AudioWorkletNode(context, "pcm-frames", {
      channelCount: 1,
      channelCountMode: "explicit",
    });
    node.port.onmessage = (event) => onFrame(event.data);
    source.connect(node);
    // A node only renders while something pulls on it; its output is silence.
    node.connect(context.destination);
    // A context made after an await may start suspended (autoplay rules).
    await context.resume();
    return { context, stream, node };
  } catch (error) {
    stream.getTracks().forEach((track) => track.stop());
    throw error;
  }
}

/** A 16 kHz context when the browser allows one for this stream, else the device's rate. */
async function connectedContext(stream) {
  const context = new AudioContext({ sampleRate: SAMPLE_RATE_HZ });
  try {
    return { context, source: context.createMediaStreamSource(stream) };
  } catch {
    // Firefox will not connect a microphone to a context of another rate.
    await context.close();
    const native = new AudioContext();
    return { context: native, source: native.createMediaStreamSource(stream) };
  }
}
