"""The official Node clients reach the gateway only over wss:// (the `openai` SDK forces it): with
MEDIA_GATEWAY_TLS_CERT_FILE/KEY_FILE set, `media-gateway serve` answers them on its one port, the client
trusting the test CA through NODE_EXTRA_CA_CERTS. Each script's server events pass the conformance gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.speech.audio import padded, spoken, spoken_clock, word_errors
from tests.support.realtime import pcm24k, pcmu8k
from tests.tls.conftest import TlsGateway, check_events, run_node

SENTENCE = "I need to know the time"  # as the telephony tests ask it: faster-whisper hears it well at 8 kHz


def _heard(transcript: str | None) -> bool:
    assert transcript is not None
    return word_errors(SENTENCE, transcript) <= 1


@pytest.mark.parametrize("client", ["OpenAIRealtimeWS", "OpenAIRealtimeWebSocket"])
async def test_openai_node_sdk_text_and_spoken_turns_over_wss(
    client: str, shared_tls_gateway: TlsGateway, node_modules: Path, tmp_path: Path
) -> None:
    """`new OpenAI({baseURL: "https://127.0.0.1:PORT/v1"})` and its realtime client (`OpenAIRealtimeWS`, on
    the `ws` package with an Authorization header; `OpenAIRealtimeWebSocket`, on Node's own WebSocket with
    the `openai-insecure-api-key.*` subprotocol): a text turn, then a spoken μ-law turn with audio back."""
    audio_file = tmp_path / "speech.ulaw"
    audio_file.write_bytes(pcmu8k(padded(spoken(SENTENCE))))
    events_file = tmp_path / "events.jsonl"
    result = await run_node(
        "openai_sdk_turns.mjs",
        {
            "baseURL": f"{shared_tls_gateway.base_url}/v1",
            "key": shared_tls_gateway.key,
            "client": client,
            "audioFile": str(audio_file),
            "eventsFile": str(events_file),
            "text": SENTENCE,
        },
        node_modules=node_modules,
        ca_file=shared_tls_gateway.authority.ca_file,
    )
    check_events(events_file)
    port = shared_tls_gateway.process.port
    assert result["url"] == f"wss://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
    assert result["errors"] == []

    text = result["text"]
    assert text["status"] == "completed", text
    assert spoken_clock(text["reply"]) is not None, text  # OVOS's date-time skill told the time
    assert "response.output_text.done" in text["types"]

    audio = result["audio"]
    assert audio["status"] == "completed", audio
    assert audio["audio_bytes"] >= 8000 * 0.5, audio  # at least half a second of 8 kHz μ-law
    assert spoken_clock(audio["reply"]) is not None, audio
    assert _heard(audio["transcript"]), audio["transcript"]
    print(
        f"\n{client} over wss: connected in {result['connect_ms']} ms; text turn {text['ms']} ms "
        f"({text['reply']!r}); spoken turn: committed {audio['committed_ms']} ms, first audio "
        f"{audio['first_audio_ms']} ms, done {audio['ms']} ms, {audio['audio_bytes']} bytes of μ-law, "
        f"heard {audio['transcript']!r}, said {audio['reply']!r}"
    )


async def test_agents_realtime_session_text_and_spoken_turns_over_wss(
    shared_tls_gateway: TlsGateway, node_modules: Path, tmp_path: Path
) -> None:
    """`@openai/agents-realtime`: a `RealtimeSession` on its `OpenAIRealtimeWebSocket` transport, connected
    with `url: "wss://127.0.0.1:PORT/v1/realtime?model=gpt-realtime"`, completes a typed turn and a spoken
    one (24 kHz PCM, server VAD) and plays audio back for both."""
    audio_file = tmp_path / "speech.pcm"
    audio_file.write_bytes(pcm24k(padded(spoken(SENTENCE), before_ms=500, after_ms=1200)))
    events_file = tmp_path / "events.jsonl"
    result = await run_node(
        "agents_realtime_turns.mjs",
        {
            "url": f"{shared_tls_gateway.base_url.replace('https://', 'wss://')}/v1/realtime?model=gpt-realtime",
            "key": shared_tls_gateway.key,
            "audioFile": str(audio_file),
            "eventsFile": str(events_file),
            "text": SENTENCE,
        },
        node_modules=node_modules,
        ca_file=shared_tls_gateway.authority.ca_file,
    )
    check_events(events_file)
    assert result["errors"] == []
    text, audio = result["text"], result["audio"]
    for turn in (text, audio):
        assert turn["audio_bytes"] > 4800, turn  # more than 0.1 s of 24 kHz PCM
        assert spoken_clock(turn["reply"]) is not None, turn
        assert "response.done" in turn["types"], turn
    assert _heard(audio["transcript"]), audio["transcript"]
    print(
        f"\n@openai/agents-realtime over wss: connected in {result['connect_ms']} ms; text turn "
        f"{text['ms']} ms ({text['reply']!r}); spoken turn {audio['ms']} ms from the last chunk, heard "
        f"{audio['transcript']!r}, said {audio['reply']!r}"
    )
