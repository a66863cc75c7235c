"""OpenVoiceOS behind the gateway: the messagebus client, OVOS sessions, turns, and a local ovos-core.

* `message`: the bus's wire format (one JSON text frame per message) and the messages the gateway sends.
* `bus`: one WebSocket connection to an OVOS messagebus, kept open, routing what arrives to a handler.
* `sessions`: the OVOS session dict each realtime session carries (language, location, pipeline, dialog
  state), merged from the session's settings and what OVOS last returned.
* `assistant`: turns mapped to the realtime protocol: an utterance in, `speak`s and the turn's end out.
* `local`: starts ovos-messagebus and ovos-core from their own virtualenv and answers their start-up probes
  (the embedded default, and the tests).

Nothing here imports ovos-core or ovos-bus-client: they cannot share an environment with aiortc, and the
messagebus needs nothing but aiohttp.
"""
