"""Phone calls through media-stream WebSockets (Twilio Media Streams, and the providers that copy its shape):
the wire format (`protocol`), marked playout (`playout`) and the stream as a realtime session (`stream`)."""
