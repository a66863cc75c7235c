// The official `openai` Node SDK's realtime WebSocket client against the gateway over wss:// (the SDK
// builds wss://<baseURL host>/v1/realtime?model=… whatever the base URL's scheme). A text turn, then a
// spoken turn (G.711 μ-law in, manual commit, μ-law audio out).
//
// node openai_sdk_turns.mjs '{"baseURL": "https://127.0.0.1:PORT/v1", "key": "sk_…",
//     "client": "OpenAIRealtimeWS" | "OpenAIRealtimeWebSocket", "audioFile": "speech.ulaw",
//     "eventsFile": "events.jsonl", "text": "what time is it"}'
//
// The packages come from NODE_PATH (scripts/install-node-clients.sh); the test CA from NODE_EXTRA_CA_CERTS.
// Every server event is appended to eventsFile (the Python test validates them); the last stdout line is
// a JSON summary.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { OpenAI } = require('openai');
const { OpenAIRealtimeWS } = require('openai/realtime/ws');
const { OpenAIRealtimeWebSocket } = require('openai/realtime/websocket');

const config = JSON.parse(process.argv[2]);
const clients = { OpenAIRealtimeWS, OpenAIRealtimeWebSocket };
const started = performance.now();
const elapsed = (since) => Math.round(performance.now() - since);

const client = new OpenAI({ apiKey: config.key, baseURL: config.baseURL });
const rt = new clients[config.client]({ model: 'gpt-realtime' }, client);
const url = rt.url.toString();

const events = [];
const errors = [];
let waiter = null;
writeFileSync(config.eventsFile, '');
rt.on('event', (event) => {
  appendFileSync(config.eventsFile, `${JSON.stringify(event)}\n`);
  events.push(event);
  if (waiter && waiter.type === event.type) {
    const { resolve } = waiter;
    waiter = null;
    resolve(event);
  }
});
rt.on('error', (error) => {
  errors.push(String(error?.message ?? error));
  if (waiter) waiter.reject(new Error(`realtime error: ${error?.message ?? error}`));
});

function next(type, from, timeoutMs = 25000) {
  const seen = events.slice(from).find((event) => event.type === type);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ${type} within ${timeoutMs} ms; got ${events.map((e) => e.type)}`)),
      timeoutMs,
    );
    waiter = {
      type,
      resolve: (event) => (clearTimeout(timer), resolve(event)),
      reject: (error) => (clearTimeout(timer), reject(error)),
    };
  });
}

const typesFrom = (from) => events.slice(from).map((event) => event.type);

await next('session.created', 0);
const connectMs = elapsed(started);

// A text turn.
let from = events.length;
let turnStart = performance.now();
rt.send({
  type: 'conversation.item.create',
  item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: config.text }] },
});
rt.send({ type: 'response.create', response: { output_modalities: ['text'] } });
const textDone = await next('response.done', from);
const text = {
  ms: elapsed(turnStart),
  status: textDone.response.status,
  reply: events
    .slice(from)
    .filter((event) => event.type === 'response.output_text.delta')
    .map((event) => event.delta)
    .join(''),
  types: typesFrom(from),
};

// A spoken turn: μ-law in 100 ms chunks, a manual commit, a response with μ-law audio.
from = events.length;
rt.send({
  type: 'session.update',
  session: {
    type: 'realtime',
    audio: {
      input: {
        format: { type: 'audio/pcmu' },
        transcription: { model: 'gpt-4o-mini-transcribe' },
        turn_detection: null,
      },
      output: { format: { type: 'audio/pcmu' } },
    },
  },
});
await next('session.updated', from);
from = events.length;
turnStart = performance.now();
const speech = readFileSync(config.audioFile);
for (let at = 0; at < speech.length; at += 800) {
  rt.send({ type: 'input_audio_buffer.append', audio: speech.subarray(at, at + 800).toString('base64') });
}
rt.send({ type: 'input_audio_buffer.commit' });
await next('input_audio_buffer.committed', from);
const committedMs = elapsed(turnStart);
rt.send({ type: 'response.create' });
const firstAudio = await next('response.output_audio.delta', from);
const firstAudioMs = elapsed(turnStart);
const audioDone = await next('response.done', from);
const doneMs = elapsed(turnStart);
const transcription = await next('conversation.item.input_audio_transcription.completed', from);
const turn = events.slice(from);
const audio = {
  ms: doneMs,
  committed_ms: committedMs,
  first_audio_ms: firstAudioMs,
  status: audioDone.response.status,
  response_id: firstAudio.response_id,
  audio_bytes: turn
    .filter((event) => event.type === 'response.output_audio.delta')
    .reduce((total, event) => total + Buffer.from(event.delta, 'base64').length, 0),
  transcript: transcription.transcript,
  reply: turn
    .filter((event) => event.type === 'response.output_audio_transcript.delta')
    .map((event) => event.delta)
    .join(''),
  types: typesFrom(from),
};

rt.close();
console.log(JSON.stringify({ client: config.client, url, connect_ms: connectMs, text, audio, errors }));
