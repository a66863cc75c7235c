"""Validate an SDP offer before any peer connection exists, so a bad offer is a plain 400, never a 500.

aiortc's parser is lenient: it accepts truncated offers, offers without ICE credentials or DTLS
fingerprints, and offers without audio, and then fails later (or never connects). We check what the
gateway needs: an active audio `m=` line with a codec we can decode (Opus, or G.711 as aiortc offers
them), ICE credentials and a DTLS fingerprint for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc.sdp import SessionDescription

from media_gateway.transports.webrtc.ice import strip_mdns_candidates

MAX_SDP_BYTES = 128 * 1024
SUPPORTED_AUDIO_CODECS = frozenset({"opus", "pcmu", "pcma"})


class OfferError(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Offer:
    sdp: str
    has_data_channel: bool
    mdns_candidates_stripped: int


def parse_offer(raw: bytes) -> Offer:
    if len(raw) > MAX_SDP_BYTES:
        raise OfferError(f"The SDP offer is larger than {MAX_SDP_BYTES} bytes.", "sdp_too_large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise OfferError("The SDP offer is not valid UTF-8 text.", "invalid_offer") from None
    text = text.strip()
    if not text:
        raise OfferError("The SDP offer is empty.", "invalid_offer")
    if not text.startswith("v=0"):
        raise OfferError("The body is not an SDP offer: it must start with 'v=0'.", "invalid_offer")
    text, stripped = strip_mdns_candidates(text)
    try:
        description = SessionDescription.parse(text)
    except Exception as exc:  # aiortc raises ValueError, KeyError, IndexError... on malformed lines
        raise OfferError(
            f"The SDP offer could not be parsed: {type(exc).__name__}.", "invalid_offer"
        ) from None
    audio = [m for m in description.media if m.kind == "audio" and m.port != 0]
    if not audio:
        raise OfferError("The SDP offer has no active audio m-line.", "no_audio_media")
    media = audio[0]
    codecs = {codec.name.lower() for codec in media.rtp.codecs}
    if not codecs & SUPPORTED_AUDIO_CODECS:
        offered = ", ".join(sorted(codecs)) or "none"
        raise OfferError(
            f"No supported audio codec in the offer (offered: {offered[:200]}); offer opus, PCMU or PCMA.",
            "unsupported_codecs",
        )
    if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
        raise OfferError("The SDP offer has no ICE credentials (a=ice-ufrag / a=ice-pwd).", "invalid_offer")
    if media.dtls is None or not media.dtls.fingerprints:
        raise OfferError("The SDP offer has no DTLS fingerprint (a=fingerprint).", "invalid_offer")
    has_data_channel = any(m.kind == "application" and m.port != 0 for m in description.media)
    return Offer(sdp=text, has_data_channel=has_data_channel, mdns_candidates_stripped=stripped)
