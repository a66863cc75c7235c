"""Static files of the browser demo served at `/` (see `media_gateway.signaling.demo`)."""
