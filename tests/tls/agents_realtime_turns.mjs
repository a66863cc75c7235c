// `@openai/agents-realtime` in Node against the gateway over wss://: a RealtimeSession on the
// OpenAIRealtimeWebSocket transport (the `ws` package, Authorization header), a typed turn, then a spoken
// one (24 kHz PCM in 100 ms chunks, server VAD ends the turn and starts the response).
//
// node agents_realtime_turns.mjs '{"url": "wss://127.0.0.1:PORT/v1/realtime?model=gpt-realtime",
//     "key": "sk_…", "audioFile": "speech.pcm", "eventsFile": "events.jsonl", "text": "what time is it"}'
//
// The packages come from NODE_PATH (scripts/install-node-clients.sh); the test CA from NODE_EXTRA_CA_CERTS.
// Every raw server event is appended to eventsFile; the last stdout line is a JSON summary.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { OpenAIRealtimeWebSocket, RealtimeAgent, RealtimeSession } = require('@openai/agents-realtime');

const config = JSON.parse(process.argv[2]);
const elapsed = (since) => Math.round(performance.now() - since);
const TURN_MS = 25000;

const agent = new RealtimeAgent({ name: 'Assistant', instructions: 'Answer briefly.' });
const transport = new OpenAIRealtimeWebSocket();
const session = new RealtimeSession(agent, {
  transport,
  model: 'gpt-realtime',
  config: {
    audio: {
      input: {
        format: { type: 'audio/pcm', rate: 24000 },
        transcription: { model: 'gpt-4o-mini-transcribe' },
        turnDetection: { type: 'server_vad', silenceDurationMs: 500 },
      },
      output: { format: { type: 'audio/pcm', rate: 24000 } },
    },
  },
});

const events = [];
const errors = [];
let audioBytes = 0;
let ended = null;
writeFileSync(config.eventsFile, '');
transport.on('*', (event) => {
  appendFileSync(config.eventsFile, `${JSON.stringify(event)}\n`);
  events.push(event);
});
session.on('error', (error) => errors.push(String(error?.error?.message ?? JSON.stringify(error?.error))));
session.on('audio', (event) => {
  audioBytes += event.data.byteLength;
});
session.on('agent_end', (_context, _agent, output) => {
  if (ended) ended(output);
});

function agentEnd() {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no agent_end within ${TURN_MS} ms; got ${events.map((e) => e.type)}`)),
      TURN_MS,
    );
    ended = (output) => {
      clearTimeout(timer);
      ended = null;
      resolve(output);
    };
  });
}

function turnSummary(from, started, reply) {
  const turn = events.slice(from);
  const transcription = turn.find(
    (event) => event.type === 'conversation.item.input_audio_transcription.completed',
  );
  return {
    ms: elapsed(started),
    reply,
    audio_bytes: audioBytes,
    transcript: transcription?.transcript ?? null,
    types: turn.map((event) => event.type),
  };
}

const started = performance.now();
await session.connect({ apiKey: config.key, url: config.url });
const connectMs = elapsed(started);

// A typed turn.
let from = events.length;
let turnStart = performance.now();
let end = agentEnd();
session.sendMessage(config.text);
const text = turnSummary(from, turnStart, await end);

// A spoken turn: the whole utterance, then the server's VAD hears the silence after it.
audioBytes = 0;
from = events.length;
end = agentEnd();
const speech = readFileSync(config.audioFile);
for (let at = 0; at < speech.length; at += 4800) {
  const chunk = speech.subarray(at, at + 4800);
  session.sendAudio(chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.length));
}
turnStart = performance.now();
const reply = await end;
// The input transcription may follow the response; give it a moment.
for (let waited = 0; waited < 5000; waited += 50) {
  if (events.slice(from).some((e) => e.type === 'conversation.item.input_audio_transcription.completed')) break;
  await new Promise((resolve) => setTimeout(resolve, 50));
}
const audio = turnSummary(from, turnStart, reply);

session.close();
console.log(JSON.stringify({ connect_ms: connectMs, text, audio, errors }));
