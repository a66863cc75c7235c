// Browser demo of ovos-media-gateway. The call set-up below is OpenAI's browser WebRTC sample for the
// Realtime API (GA) with one change: BASE_URL points at this gateway instead of https://api.openai.com/v1.
// No build step and nothing fetched from anywhere but the gateway.
//
// State useful to tests and to the curious is published on `window.demo` (read-only for the page's user):
//   demo.connected   true while the peer connection is connected
//   demo.status      idle | connecting | connected | closed | error
//   demo.events      parsed server events, oldest first (capped)      demo.raw   the same, as received
//   demo.sent        client events sent on the data channel
//   demo.transcript  "You: …\nAssistant: …" lines                      demo.error last error message
//   demo.micLevelDb / demo.micPeakDb, demo.replyLevelDb / demo.replyPeakDb (dBFS, from AnalyserNodes)
//   demo.inboundAudioStats()  the inbound-rtp audio stats of the call (a Promise)
"use strict";

const BASE_URL = `${window.location.origin}/v1`; // OpenAI: "https://api.openai.com/v1"
const CLIENT_SECRET_URL = "/demo/client_secret"; // the demo's stand-in for your own backend
const MAX_EVENTS = 5000; // events kept on window.demo
const MAX_LOG_ROWS = 300; // rows kept in the on-screen log
const SILENT_DB = -100;

const demo = {
  status: "idle",
  connected: false,
  callId: null,
  error: null,
  events: [],
  raw: [],
  droppedEvents: 0,
  sent: [],
  transcript: "",
  micLevelDb: SILENT_DB,
  micPeakDb: SILENT_DB,
  replyLevelDb: SILENT_DB,
  replyPeakDb: SILENT_DB,
  inboundAudioStats: async () => null,
};
window.demo = demo;

const $ = (id) => document.getElementById(id);
let call = null; // {pc, dc, mic, audioContext, meters, meterTimer}
const startedAt = performance.now();

// ---- the call: OpenAI's browser sample ------------------------------------------------------------

async function connect() {
  setStatus("connecting");
  // Your backend mints an ephemeral key (`ek_…`) with its server key; here the gateway's demo endpoint does.
  const tokenResponse = await fetch(CLIENT_SECRET_URL, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  });
  if (!tokenResponse.ok) throw new Error(`client secret: ${await describeError(tokenResponse)}`);
  const EPHEMERAL_KEY = (await tokenResponse.json()).value;

  const pc = new RTCPeerConnection();
  call = { pc, dc: null, mic: null, audioContext: new AudioContext(), meters: [], meterTimer: null };
  // A timer rather than requestAnimationFrame: the meters keep measuring in a background tab.
  const meters = call.meters;
  call.meterTimer = setInterval(() => meters.forEach((sample) => sample()), 50);
  demo.inboundAudioStats = () => inboundAudioStats(pc);

  // Play the model's audio.
  const audioEl = $("remote-audio");
  audioEl.autoplay = true;
  pc.ontrack = (e) => {
    const stream = e.streams[0] ?? new MediaStream([e.track]);
    audioEl.srcObject = stream;
    attachMeter(stream, "reply");
  };
  pc.addEventListener("connectionstatechange", () => onConnectionState(pc));

  // Add the microphone.
  const ms = await navigator.mediaDevices.getUserMedia({ audio: true });
  call.mic = ms;
  pc.addTrack(ms.getTracks()[0]);
  attachMeter(ms, "mic");

  // Events go both ways on the "oai-events" data channel.
  const dc = pc.createDataChannel("oai-events");
  call.dc = dc;
  dc.addEventListener("open", () => {
    sendEvent({
      type: "session.update",
      session: { type: "realtime", audio: { input: { transcription: { model: "whisper-1" } } } },
    });
  });
  dc.addEventListener("message", (e) => onServerEvent(e.data));
  dc.addEventListener("close", () => {
    if (call && call.dc === dc) {
      logLine("local", "data channel closed", "");
      hangup();
    }
  });

  // Start the session with SDP: one POST, the answer comes back complete.
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const sdpResponse = await fetch(`${BASE_URL}/realtime/calls`, {
    method: "POST",
    body: offer.sdp,
    headers: {
      Authorization: `Bearer ${EPHEMERAL_KEY}`,
      "Content-Type": "application/sdp",
    },
  });
  if (!sdpResponse.ok) throw new Error(`SDP exchange: ${await describeError(sdpResponse)}`);
  const location = sdpResponse.headers.get("Location");
  demo.callId = location ? location.split("/").pop() : null;
  $("call-id").textContent = demo.callId ?? "";
  const answer = { type: "answer", sdp: await sdpResponse.text() };
  await pc.setRemoteDescription(answer);
}

function hangup(finalStatus = "closed") {
  const current = call;
  call = null;
  if (current) {
    clearInterval(current.meterTimer);
    if (current.dc) current.dc.close();
    current.pc.getSenders().forEach((sender) => sender.track && sender.track.stop());
    current.pc.close();
    if (current.mic) current.mic.getTracks().forEach((track) => track.stop());
    current.audioContext.close().catch(() => {});
  }
  $("remote-audio").srcObject = null;
  demo.connected = false;
  demo.micLevelDb = demo.replyLevelDb = SILENT_DB;
  showLevel("mic", SILENT_DB);
  showLevel("reply", SILENT_DB);
  if (demo.status !== "error" || finalStatus === "error") setStatus(finalStatus);
  updateButton();
}

function onConnectionState(pc) {
  if (!call || call.pc !== pc) return;
  const state = pc.connectionState;
  logLine("local", `peer ${state}`, "");
  if (state === "connected") {
    demo.connected = true;
    setStatus("connected");
  } else if (state === "failed" || state === "closed") {
    hangup(state === "failed" ? "error" : "closed");
    if (state === "failed") fail("the peer connection failed");
  }
}

function sendEvent(event) {
  if (!call || !call.dc || call.dc.readyState !== "open") return;
  call.dc.send(JSON.stringify(event));
  demo.sent.push(event);
  logLine("sent", `→ ${event.type}`, "");
}

async function inboundAudioStats(pc) {
  const report = await pc.getStats();
  for (const stats of report.values()) {
    if (stats.type === "inbound-rtp" && stats.kind === "audio") {
      return {
        packetsReceived: stats.packetsReceived ?? 0,
        bytesReceived: stats.bytesReceived ?? 0,
        totalAudioEnergy: stats.totalAudioEnergy ?? 0,
        totalSamplesDuration: stats.totalSamplesDuration ?? 0,
        audioLevel: stats.audioLevel ?? 0,
      };
    }
  }
  return null;
}

// ---- server events ----------------------------------------------------------------------------------

function onServerEvent(data) {
  let event;
  try {
    event = JSON.parse(data);
  } catch {
    logLine("error", "unparsable message", String(data).slice(0, 80));
    return;
  }
  demo.raw.push(data);
  demo.events.push(event);
  if (demo.events.length > MAX_EVENTS) {
    demo.events.shift();
    demo.raw.shift();
    demo.droppedEvents += 1;
  }
  $("event-count").textContent = String(demo.events.length + demo.droppedEvents);
  logLine(event.type === "error" ? "error" : "received", event.type, detailOf(event));

  switch (event.type) {
    case "input_audio_buffer.speech_started":
      transcriptLine(event.item_id, "user");
      break;
    case "conversation.item.input_audio_transcription.delta":
      transcriptLine(event.item_id, "user").append(event.delta ?? "");
      break;
    case "conversation.item.input_audio_transcription.completed":
      transcriptLine(event.item_id, "user").finish(event.transcript ?? "");
      break;
    case "conversation.item.input_audio_transcription.failed":
      transcriptLine(event.item_id, "user").finish("(not understood)");
      break;
    case "response.output_audio_transcript.delta":
    case "response.output_text.delta":
      transcriptLine(event.item_id, "assistant").append(event.delta ?? "");
      break;
    case "response.output_audio_transcript.done":
      transcriptLine(event.item_id, "assistant").finish(event.transcript ?? "");
      break;
    case "response.output_text.done":
      transcriptLine(event.item_id, "assistant").finish(event.text ?? "");
      break;
    case "error":
      demo.error = event.error?.message ?? "error";
      break;
    default:
      break;
  }
}

function detailOf(event) {
  switch (event.type) {
    case "error":
      return event.error?.message ?? "";
    case "session.created":
    case "session.updated":
      return event.session?.id ?? "";
    case "response.done":
      return event.response?.status ?? "";
    case "conversation.item.input_audio_transcription.completed":
      return JSON.stringify(event.transcript ?? "");
    case "response.output_audio_transcript.delta":
    case "conversation.item.input_audio_transcription.delta":
      return JSON.stringify(event.delta ?? "");
    default:
      return event.item_id ?? event.response_id ?? "";
  }
}

// ---- transcript ---------------------------------------------------------------------------------

const lines = new Map(); // item id -> {role, text, done, element}

function transcriptLine(itemId, role) {
  const key = itemId ?? `${role}-${lines.size}`;
  let line = lines.get(key);
  if (!line) {
    const element = document.createElement("li");
    element.className = `${role} pending`;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "You" : "Assistant";
    const text = document.createElement("span");
    text.className = "text";
    element.append(who, text);
    $("transcript").append(element);
    line = {
      role,
      text: "",
      done: false,
      element,
      append(delta) {
        if (this.done) return;
        this.text += delta;
        this.render();
      },
      finish(full) {
        this.text = full || this.text;
        this.done = true;
        this.element.classList.remove("pending");
        this.render();
      },
      render() {
        text.textContent = this.text;
        element.scrollIntoView({ block: "nearest" });
        demo.transcript = [...lines.values()]
          .filter((l) => l.text)
          .map((l) => `${l.role === "user" ? "You" : "Assistant"}: ${l.text}`)
          .join("\n");
      },
    };
    lines.set(key, line);
  }
  return line;
}

// ---- level meters (WebAudio AnalyserNode) --------------------------------------------------------

function attachMeter(stream, which) {
  if (!call) return;
  const context = call.audioContext;
  context.resume().catch(() => {});
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  context.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const sample = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const value of samples) sum += value * value;
    const rms = Math.sqrt(sum / samples.length);
    const db = rms > 0 ? Math.max(SILENT_DB, 20 * Math.log10(rms)) : SILENT_DB;
    demo[`${which}LevelDb`] = db;
    demo[`${which}PeakDb`] = Math.max(demo[`${which}PeakDb`], db);
    showLevel(which, db);
  };
  call.meters.push(sample);
}

function showLevel(which, db) {
  $(`${which}-level`).value = Math.max(-60, db);
  $(`${which}-db`).textContent = db <= SILENT_DB ? "–" : `${db.toFixed(0)} dB`;
}

// ---- page ---------------------------------------------------------------------------------------

function setStatus(status, detail = "") {
  demo.status = status;
  const element = $("status");
  element.className = `status ${status}`;
  element.textContent = detail ? `${status}: ${detail}` : status;
  updateButton();
}

function fail(message) {
  demo.error = message;
  setStatus("error", message);
  logLine("error", "error", message);
}

function updateButton() {
  const button = $("connect");
  const active = call !== null;
  button.textContent = active ? "Hang up" : "Connect";
  button.classList.toggle("hangup", active);
  button.disabled = demo.status === "connecting" && !active;
}

function logLine(kind, type, detail) {
  const row = document.createElement("li");
  row.className = kind;
  const time = document.createElement("span");
  time.className = "t";
  time.textContent = `${((performance.now() - startedAt) / 1000).toFixed(2)}s`;
  const name = document.createElement("span");
  name.className = "type";
  name.textContent = type;
  row.append(time, name);
  if (detail) {
    const extra = document.createElement("span");
    extra.className = "detail";
    extra.textContent = detail;
    row.append(extra);
  }
  const log = $("log");
  log.append(row);
  while (log.childElementCount > MAX_LOG_ROWS) log.firstElementChild.remove();
  row.scrollIntoView({ block: "nearest" });
}

async function describeError(response) {
  try {
    const body = await response.json();
    return `${response.status} ${body.error?.message ?? response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

function onButton() {
  if (call) {
    hangup();
    return;
  }
  demo.error = null;
  connect().catch((error) => {
    hangup("error");
    fail(error.message ?? String(error));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("base-url").textContent = BASE_URL;
  $("connect").addEventListener("click", onButton);
  updateButton();
});
