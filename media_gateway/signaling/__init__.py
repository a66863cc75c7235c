"""REST signaling: client secrets, session bootstrap, calls (SDP) and OpenAI-shaped errors."""
