// Runs on the audio rendering thread: turns the microphone's float samples
// into frames of 16 kHz PCM s16le (20 ms, 640 bytes) and posts each frame's
// ArrayBuffer to the page, which sends it to the edge as is.
//
// The page asks for a 16 kHz AudioContext, so usually nothing is resampled
// here. Browsers that refuse to connect a microphone to a context of another
// rate (Firefox) get a context at the device's rate, and this averages each
// run of input samples that makes one output sample: a box low-pass and
// decimation in one, which is plenty for speech recognition.
"use strict";

const TARGET_RATE_HZ = 16000;
const FRAME_SAMPLES = 320; // 20 ms at 16 kHz

class PcmFrames extends AudioWorkletProcessor {
  constructor() {
    super();
    // `sampleRate` is the context's rate, a global of the worklet scope.
    this.inputPerOutput = sampleRate / TARGET_RATE_HZ;
    this.phase = 0;
    this.sum = 0;
    this.count = 0;
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
  }

  process(inputs) {
    const samples = inputs[0] && inputs[0][0];
    if (samples) {
      if (this.inputPerOutput === 1) {
        for (const sample of samples) this.emit(sample);
      } else {
        this.decimate(samples);
      }
    }
    return true; // keep running while the microphone is connected
  }

  decimate(samples) {
    for (const sample of samples) {
      this.sum += sample;
      this.count += 1;
      this.phase += 1;
      if (this.phase >= this.inputPerOutput) {
        this.phase -= this.inputPerOutput;
        this.emit(this.sum / this.count);
        this.sum = 0;
        this.count = 0;
      }
    }
  }

  emit(value) {
    const clipped = Math.max(-1, Math.min(1, value));
    // Typed arrays use the platform's byte order: little-endian on every
    // platform a browser runs on, which is what s16le asks for.
    this.frame[this.filled] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
    this.filled += 1;
    if (this.filled === FRAME_SAMPLES) {
      const buffer = this.frame.buffer;
      this.port.postMessage(buffer, [buffer]);
      this.frame = new Int16Array(FRAME_SAMPLES);
      this.filled = 0;
    }
  }
}

registerProcessor("pcm-frames", PcmFrames);
