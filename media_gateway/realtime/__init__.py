"""Realtime protocol engine: event models, session state, turns and responses (transport-agnostic)."""
