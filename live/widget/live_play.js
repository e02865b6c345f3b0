// Live play in the browser: knobs, a Play/Stop button, volume, buffer health and latency, Web MIDI. The kernel
// renders audio only when this side pulls it (see live_play.py for the protocol); an AudioWorklet plays it from
// a jitter buffer (jitter_buffer_worklet.js, sent as the `_worklet` trait).
const STATUS_EVERY = 8; // worklet status every 8 quanta, about 21 ms at 48 kHz: the pull loop's clock
// Smallest block asked for: about 20 messages a second each way through the kernel, the server and the page, and
// the buffer swings between target - 50 ms and the target.
const PULL_MIN_MS = 50;
const TARGET_START_MS = 300; // audio kept buffered at the start: the latency floor on a quiet link
const SHOW_EVERY_MS = 250; // the readouts' refresh: the page has better things to do than repaint them
const PREFILL_SHARE = 0.75; // after a gap the worklet waits for this share of the target before it plays again
const TARGET_STEP_MS = 20; // added at each underflow: a slow link costs latency, never a pile-up of gaps
const TARGET_MAX_MS = 600;
const LATENCY_SHOWN = 20; // the readout is the median of the last 20 knob moves heard

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
}

function element(tag, attributes = {}, children = []) {
  const node = Object.assign(document.createElement(tag), attributes);
  node.append(...children);
  return node;
}

// One press of Play: an AudioContext, the worklet, and the pull loop, until stop().
class Session {
  constructor(model, onChange) {
    this.model = model;
    this.onChange = onChange;
    this.sourceRate = model.get("sample_rate");
    this.targetMs = TARGET_START_MS;
    this.status = { buffered: 0, received: 0, underflows: 0 };
    this.posted = 0; // model frames handed to the worklet
    this.inflight = new Map(); // pull id -> frames asked for, not yet come
    this.nextPull = 0;
    this.sentAt = new Map(); // control seq -> performance.now() when it was sent
    this.lastMark = 0;
    this.latencies = [];
    this.realTime = NaN;
    this.shownAt = 0;
    this.tapChunks = null;
    this.onMessage = (message, buffers) => this.fromKernel(message, buffers);
  }

  frames(ms) {
    return Math.round((ms * this.sourceRate) / 1000);
  }

  // Below the target, so the worklet starts while the pull loop tops the buffer up to the target.
  prefill() {
    return this.frames(PREFILL_SHARE * this.targetMs);
  }

  async start(volume) {
    this.context = new AudioContext({ latencyHint: "interactive" });
    const url = URL.createObjectURL(new Blob([this.model.get("_worklet")], { type: "text/javascript" }));
    await this.context.audioWorklet.addModule(url);
    URL.revokeObjectURL(url);
    this.node = new AudioWorkletNode(this.context, "jitter-buffer-player", {
      numberOfInputs: 0, outputChannelCount: [1],
      processorOptions: { sourceRate: this.sourceRate, statusEvery: STATUS_EVERY, prefill: this.prefill() },
    });
    this.gain = new GainNode(this.context, { gain: volume });
    this.node.connect(this.gain).connect(this.context.destination);
    this.node.port.onmessage = (event) => this.fromWorklet(event.data);
    this.model.on("msg:custom", this.onMessage);
    this.model.send({ type: "start" });
    await this.context.resume();
    this.topUp();
  }

  stop() {
    this.model.off("msg:custom", this.onMessage);
    this.model.send({ type: "stop" });
    this.node?.port.close();
    this.context?.close();
  }

  control(message) {
    this.sentAt.set(message.seq, performance.now());
    this.model.send(message);
  }

  // Ask for what the buffer lacks of its target, counting what is already on its way.
  topUp() {
    const buffered = this.status.buffered + (this.posted - this.status.received);
    const asked = [...this.inflight.values()].reduce((a, b) => a + b, 0);
    const lacking = Math.floor(this.frames(this.targetMs) - buffered - asked);
    if (lacking < this.frames(PULL_MIN_MS)) return;
    const id = ++this.nextPull;
    this.inflight.set(id, lacking);
    this.model.send({ type: "pull", frames: lacking, id });
  }

  fromKernel(message, buffers) {
    if (message.type === "error") {
      this.onChange({ error: message.message });
      return;
    }
    if (message.type !== "audio" || !this.inflight.delete(message.id)) return; // a reply to an earlier session
    const view = buffers[0];
    const samples = new Float32Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
    const audio = { type: "audio", samples };
    if (message.control > this.lastMark) audio.mark = this.lastMark = message.control;
    this.posted += samples.length; // before the transfer empties `samples`
    this.node.port.postMessage(audio, [samples.buffer]);
    this.realTime = message.real_time;
    this.topUp();
  }

  fromWorklet(message) {
    if (message.type === "status") {
      if (message.underflows > this.status.underflows) {
        this.targetMs = Math.min(TARGET_MAX_MS, this.targetMs + TARGET_STEP_MS);
        this.node.port.postMessage({ type: "prefill", frames: this.prefill() });
      }
      this.status = message;
      this.topUp();
      if (performance.now() - this.shownAt > SHOW_EVERY_MS) {
        this.shownAt = performance.now();
        this.onChange({});
      }
    } else if (message.type === "played") {
      this.heard(message.mark);
    } else if (message.type === "tap") {
      this.tapChunks?.push(message.samples);
    }
  }

  // A control's sound reached the output: from its send to the worklet playing it, plus the output's own delay.
  heard(mark) {
    const outputMs = 1000 * ((this.context.outputLatency || 0) + (this.context.baseLatency || 0));
    // Knobs moved before Play have no send time here: the engine starts with them.
    if (this.sentAt.has(mark)) this.latencies.push(performance.now() - this.sentAt.get(mark) + outputMs);
    for (const seq of this.sentAt.keys()) if (seq <= mark) this.sentAt.delete(seq);
  }

  health() {
    return {
      bufferedMs: (1000 * this.status.buffered) / this.sourceRate, targetMs: this.targetMs,
      underflows: this.status.underflows, latencyMs: median(this.latencies.slice(-LATENCY_SHOWN)),
      realTime: this.realTime,
    };
  }

  record(on) {
    this.tapChunks = on ? [] : this.tapChunks;
    this.node.port.postMessage({ type: "record", on });
  }

  recording() {
    const chunks = this.tapChunks || [];
    const all = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
    chunks.reduce((at, c) => (all.set(c, at), at + c.length), 0);
    return all;
  }
}

// MIDI keyboards on the user's own computer play the kernel's model: note on and off go to the kernel.
async function connectMidi(onNote, show) {
  if (!navigator.requestMIDIAccess) {
    show("MIDI: this browser has no Web MIDI");
    return;
  }
  try {
    const access = await navigator.requestMIDIAccess();
    const attach = () => {
      const inputs = [...access.inputs.values()];
      for (const input of inputs) input.onmidimessage = ({ data }) => onNote(data);
      show(inputs.length ? `MIDI: ${inputs.map((i) => i.name).join(", ")}` : "MIDI: no keyboard connected");
    };
    access.onstatechange = attach;
    attach();
  } catch (error) {
    show(`MIDI: ${error.message}`);
  }
}

function base64(samples) {
  const bytes = new Uint8Array(samples.buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function render({ model, el }) {
  let session = null;
  let seq = 0;
  const play = element("button", { className: "rnn-live-play", textContent: "Play" });
  const volume = element("input", { type: "range", min: 0, max: 1, step: 0.01, value: 0.8 });
  const health = element("meter", { min: 0, max: 1, value: 0 });
  const status = element("span", { className: "rnn-live-status", textContent: "stopped" });
  const midi = element("div", { className: "rnn-live-midi", textContent: "MIDI: press Play to connect" });
  const error = element("div", { className: "rnn-live-error" });

  const knobs = model.get("parameters").map(({ name, low, high, value }) => {
    const shown = element("span", { className: "rnn-live-value", textContent: value.toFixed(2) });
    const input = element("input", { type: "range", min: low, max: high, step: (high - low) / 200, value,
                                      name, className: "rnn-live-knob" });
    input.addEventListener("input", () => {
      shown.textContent = Number(input.value).toFixed(2);
      const message = { type: "set", values: { [name]: Number(input.value) }, seq: ++seq };
      if (session) session.control(message);
      else model.send(message); // remembered by the kernel for the next Play
    });
    return element("label", { className: "rnn-live-row" }, [element("span", { textContent: name }), input, shown]);
  });

  const show = (change = {}) => {
    if (change.error) error.textContent = change.error;
    if (!session) {
      status.textContent = "stopped";
      return;
    }
    const h = session.health();
    health.value = Math.min(1, h.bufferedMs / h.targetMs);
    const latency = Number.isNaN(h.latencyMs) ? "move a knob" : `${Math.round(h.latencyMs)} ms`;
    status.textContent = `buffer ${Math.round(h.bufferedMs)} / ${Math.round(h.targetMs)} ms, `
      + `underflows ${h.underflows}, latency ${latency}, kernel ${h.realTime.toFixed(1)}x real time`;
  };

  const onNote = ([command, note, velocity]) => {
    const kind = (command & 0xf0) === 0x90 && velocity > 0 ? "note_on"
      : (command & 0xf0) === 0x80 || (command & 0xf0) === 0x90 ? "note_off" : null;
    if (kind && session) session.control({ type: kind, note, velocity, seq: ++seq });
  };

  play.addEventListener("click", async () => {
    if (session) {
      session.stop();
      session = null;
      play.textContent = "Play";
      show();
      return;
    }
    error.textContent = "";
    if (!window.isSecureContext) {
      // Browsers offer AudioWorklet (and Web MIDI) only to https pages and to http on this computer.
      error.textContent = "Live play needs a secure page: open JupyterLab over https, or through an SSH tunnel "
        + "(ssh -L 8888:localhost:8888 HOST) at http://localhost:8888";
      return;
    }
    session = new Session(model, show);
    play.textContent = "Stop";
    try {
      await session.start(Number(volume.value));
    } catch (failure) {
      session.stop();
      session = null;
      play.textContent = "Play";
      error.textContent = `could not start the audio: ${failure.message}`;
      return;
    }
    connectMidi(onNote, (text) => { midi.textContent = text; });
  });
  volume.addEventListener("input", () => session?.gain.gain.setTargetAtTime(Number(volume.value),
                                                                             session.context.currentTime, 0.02));

  const root = element("div", { className: "rnn-live" }, [
    element("div", { className: "rnn-live-row" }, [play, element("span", { textContent: "volume" }), volume]),
    ...knobs,
    element("div", { className: "rnn-live-row" }, [health, status]),
    midi, error,
  ]);
  // Test hook: the browser test records what the worklet played and reads the readouts.
  root.rnnLiveTest = {
    record: (on) => session.record(on),
    recording: () => base64(session.recording()),
    health: () => ({ ...session.health(), latencies: session.latencies, sampleRate: session.context.sampleRate,
                     inflight: [...session.inflight.values()], posted: session.posted, status: session.status }),
  };
  el.append(root);
  return () => session?.stop();
}

export default { render };
