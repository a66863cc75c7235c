"""Policy decisions: engine interface, OPA over HTTP, in-process Rego, and the Rego policies."""
