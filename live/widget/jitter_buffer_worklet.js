// The audio thread of live play. It only copies: blocks that the main thread received from the kernel go into a
// ring buffer, and each render quantum reads from it at the context's rate, resampling from the model's rate by
// linear interpolation. It never waits: when the ring runs dry it plays silence, counts an underflow and waits
// for the ring to fill to the prefill level again. It reports to the main thread:
//   {type: "status", buffered, received, underflows}   every `statusEvery` quanta (frames at the model's rate)
//   {type: "played", mark}                             when the first sample of a marked block is played
//   {type: "tap", samples}                             what it played, while the test hook records
const RING_FRAMES = 1 << 17; // about 8 s at 16 kHz: far more than any jitter buffer the main thread aims for
const TAP_FRAMES = 128 * 64; // what it played, posted in chunks of this size while recording

class JitterBufferPlayer extends AudioWorkletProcessor {
  constructor({ processorOptions }) {
    super();
    this.ring = new Float32Array(RING_FRAMES);
    this.step = processorOptions.sourceRate / sampleRate; // model frames per output frame
    this.statusEvery = processorOptions.statusEvery;
    this.prefill = processorOptions.prefill;
    this.read = 0; // position of the next output frame, in model frames (fractional)
    this.written = 0; // model frames received in total
    this.playing = false;
    this.underflows = 0;
    this.quanta = 0;
    this.marks = []; // [model frame, mark] of marked blocks not yet played
    this.tap = null;
    this.tapFill = 0;
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(message) {
    if (message.type === "audio") {
      const { samples } = message;
      if (this.written + samples.length - this.read > RING_FRAMES) return; // cannot happen with a sane target
      if (message.mark !== undefined) this.marks.push([this.written, message.mark]);
      for (let i = 0; i < samples.length; i++) this.ring[(this.written + i) % RING_FRAMES] = samples[i];
      this.written += samples.length;
    } else if (message.type === "prefill") {
      this.prefill = message.frames;
    } else if (message.type === "record") {
      this.tap = message.on ? new Float32Array(TAP_FRAMES) : null;
      this.tapFill = 0;
    }
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    if (!this.playing && this.written - this.read >= this.prefill) this.playing = true;
    if (this.playing) this.render(out);
    else out.fill(0);
    this.record(out);
    if (++this.quanta % this.statusEvery === 0) {
      this.port.postMessage({ type: "status", buffered: Math.max(0, this.written - this.read),
                              received: this.written, underflows: this.underflows });
    }
    return true;
  }

  render(out) {
    for (let i = 0; i < out.length; i++) {
      const whole = Math.floor(this.read);
      if (whole + 1 >= this.written) { // dry: silence until the ring holds `prefill` again
        out.fill(0, i);
        this.underflows++;
        this.playing = false;
        break;
      }
      const frac = this.read - whole;
      out[i] = this.ring[whole % RING_FRAMES] * (1 - frac) + this.ring[(whole + 1) % RING_FRAMES] * frac;
      this.read += this.step;
    }
    while (this.marks.length && this.marks[0][0] <= this.read) {
      this.port.postMessage({ type: "played", mark: this.marks.shift()[1] });
    }
  }

  record(out) {
    if (!this.tap) return;
    this.tap.set(out, this.tapFill);
    this.tapFill += out.length;
    if (this.tapFill === TAP_FRAMES) {
      this.port.postMessage({ type: "tap", samples: this.tap }, [this.tap.buffer]);
      this.tap = new Float32Array(TAP_FRAMES);
      this.tapFill = 0;
    }
  }
}

registerProcessor("jitter-buffer-player", JitterBufferPlayer);
