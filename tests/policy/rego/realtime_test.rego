# Unit tests of the realtime policy (run by `opa test media_gateway/policy/rego tests/policy/rego`).
package ovos_gateway.realtime_test

import data.ovos_gateway.realtime

key := {"id": "key_1", "scopes": ["realtime"], "revoked": false}

session := {
	"type": "realtime",
	"model": "gpt-realtime",
	"voice": "marin",
	"output_modalities": ["audio"],
	"max_output_tokens": "inf",
	"tools_count": 2,
	"instructions_length": 120,
}

mint_input := {
	"key": key,
	"request": {"ttl_seconds": 600, "session": session},
	"usage": {"mints_last_minute": 0, "concurrent_sessions": 0},
}

concurrent_limit := {
	"max": 10,
	"retry_after_seconds": 5,
	"reason": "rate_limited: concurrent session limit of 10 reached for this API key (scope 'realtime')",
}

mint_rate_limit := {
	"max": 60,
	"retry_after_seconds": 60,
	"reason": "rate_limited: mint limit of 60 per minute reached for this API key (scope 'realtime')",
}

test_mint_allowed_with_the_limits_to_enforce if {
	realtime.mint == {
		"allow": true,
		"reasons": [],
		"retry_after_seconds": null,
		"limits": {"concurrent_sessions": concurrent_limit, "mints_per_minute": mint_rate_limit},
	} with input as mint_input
}

test_connect_allowed_with_the_concurrent_session_limit if {
	d := realtime.connect with input as {"key": key, "secret": null, "transport": "websocket", "usage": {"concurrent_sessions": 0}}
	d.allow == true
	d.limits == {"concurrent_sessions": concurrent_limit}
}

test_limits_follow_the_most_privileged_scope if {
	d := realtime.connect with input as {
		"key": object.union(key, {"scopes": ["restricted", "admin"]}),
		"secret": null,
		"transport": "websocket",
		"usage": {"concurrent_sessions": 0},
	}
	d.limits.concurrent_sessions.max == 100
}

test_no_limits_without_a_known_scope if {
	d := realtime.connect with input as {
		"key": object.union(key, {"scopes": ["billing"]}),
		"secret": null,
		"transport": "websocket",
		"usage": {"concurrent_sessions": 0},
	}
	d.allow == false
	d.limits == {}
}

test_a_limit_the_data_leaves_out_is_absent if {
	d := realtime.mint with input as mint_input
		with data.ovos_gateway.config.scopes.realtime.mints_per_minute as "many"
	d.allow == false
	d.limits == {"concurrent_sessions": concurrent_limit}
}

test_session_update_has_no_limits if {
	d := realtime.session_update with input as {}
	d.limits == {}
}

test_mint_wrong_model_denied if {
	d := realtime.mint with input as object.union(mint_input, {"request": {"session": {"model": "gpt-4"}}})
	d.allow == false
	d.reasons == ["model 'gpt-4' is not allowed for this API key (scope 'realtime')"]
	d.retry_after_seconds == null
}

test_mint_rate_limited_has_retry_after if {
	d := realtime.mint with input as object.union(mint_input, {"usage": {"mints_last_minute": 60}})
	d.allow == false
	startswith(d.reasons[0], "rate_limited:")
	d.retry_after_seconds == 60
}

test_mint_rate_limit_and_hard_deny_has_no_retry_after if {
	d := realtime.mint with input as object.union(
		mint_input,
		{"usage": {"mints_last_minute": 60}, "request": {"ttl_seconds": 99999}},
	)
	count(d.reasons) == 2
	d.retry_after_seconds == null
}

test_every_point_defined_for_empty_input if {
	realtime.mint.allow == false with input as {}
	realtime.session_update.allow == false with input as {}
	realtime.connect.allow == false with input as {}
}

test_every_point_defined_without_data if {
	d := realtime.connect with input as {"key": key, "secret": null, "transport": "websocket", "usage": {"concurrent_sessions": 0}}
		with data.ovos_gateway.config as null
	d.allow == false
}

test_connect_live_secret_denied if {
	d := realtime.connect with input as {
		"key": key,
		"secret": {"id": "cs_1", "expired": false, "revoked": false, "live_connections": 1, "max_live_connections": 1},
		"transport": "webrtc",
		"usage": {"concurrent_sessions": 0},
	}
	d.reasons == ["client secret already has the maximum of 1 live connection(s)"]
}

connect_input := {"key": key, "secret": null, "transport": "websocket", "usage": {"concurrent_sessions": 0}}

test_connect_ovos_empty_without_fields if {
	d := realtime.connect with input as connect_input
	d.ovos == {}
}

test_connect_ovos_from_the_scope if {
	d := realtime.connect with input as connect_input
		with data.ovos_gateway.config.scopes.realtime.ovos as {"timezone": "Europe/Lisbon", "system_unit": "metric"}
	d.allow == true
	d.ovos == {"timezone": "Europe/Lisbon", "system_unit": "metric"}
}

test_connect_ovos_key_overrides_the_scope_field_by_field if {
	d := realtime.connect with input as connect_input
		with data.ovos_gateway.config.scopes.realtime.ovos as {"timezone": "Europe/Lisbon", "system_unit": "metric"}
		with data.ovos_gateway.config.keys as {
			"key_1": {"ovos": {"timezone": "Asia/Kathmandu", "pipeline": ["converse"]}},
			"key_2": {"ovos": {"timezone": "UTC"}},
		}
	d.ovos == {"timezone": "Asia/Kathmandu", "system_unit": "metric", "pipeline": ["converse"]}
}

test_connect_ovos_malformed_data_is_a_string if {
	d := realtime.connect with input as connect_input
		with data.ovos_gateway.config.keys as ["key_1"]
	d.ovos == "data.ovos_gateway.config.keys must be an object"
}

test_connect_ovos_malformed_scope_and_key_are_both_named if {
	d := realtime.connect with input as connect_input
		with data.ovos_gateway.config.scopes.realtime.ovos as "metric"
		with data.ovos_gateway.config.keys as {"key_1": {"ovos": []}}
	d.ovos == "data.ovos_gateway.config.keys['key_1'].ovos must be an object; data.ovos_gateway.config.scopes['realtime'].ovos must be an object"
}

test_connect_ovos_without_data_is_empty if {
	d := realtime.connect with input as connect_input
		with data.ovos_gateway.config as null
	d.ovos == {}
}

test_mint_and_session_update_have_no_ovos if {
	d := realtime.mint with input as mint_input
		with data.ovos_gateway.config.keys as {"key_1": {"ovos": {"timezone": "UTC"}}}
	not "ovos" in object.keys(d)
	u := realtime.session_update with input as {}
	not "ovos" in object.keys(u)
}

# --- phone calls ---------------------------------------------------------------------------------------

sip_input(facts) := object.union(connect_input, {
	"transport": "sip",
	"call": object.union({"from": "+15551234567", "to": "+302101234567", "source": "192.0.2.10"}, facts),
})

scope_calls := {"sources": ["192.0.2.0/24", "2001:db8::/32"], "called": ["+3021*"]}

test_connect_call_allowed_without_calls_data if {
	realtime.connect.allow == true with input as sip_input({})
	realtime.connect.allow == true with input as sip_input({"from": "", "to": "", "source": "2001:db8::1"})
	realtime.connect.allow == true with input as object.union(sip_input({}), {"transport": "twilio"})
}

test_connect_phone_transport_needs_a_call_and_others_none if {
	d := realtime.connect with input as object.union(connect_input, {"transport": "sip"})
	d.reasons == ["call must be an object for transport 'sip'"]
	w := realtime.connect with input as object.union(sip_input({}), {"transport": "websocket"})
	w.reasons == ["call must be null for transport 'websocket'"]
}

test_connect_call_fields_are_validated if {
	d := realtime.connect with input as sip_input({"from": 1, "to": null, "source": "192.0.2.10/32"})
	d.reasons == ["call.from must be a string", "call.source must be an IPv4 or IPv6 address", "call.to must be a string"]
}

test_connect_call_source_ranges if {
	realtime.connect.allow == true with input as sip_input({"source": "192.0.2.200"})
		with data.ovos_gateway.config.scopes.realtime.calls as scope_calls
	realtime.connect.allow == true with input as sip_input({"source": "2001:db8::5"})
		with data.ovos_gateway.config.scopes.realtime.calls as scope_calls
	realtime.connect.allow == true with input as sip_input({"source": "::ffff:192.0.2.200"})
		with data.ovos_gateway.config.scopes.realtime.calls as scope_calls
	d := realtime.connect with input as sip_input({"source": "10.1.2.3"})
		with data.ovos_gateway.config.scopes.realtime.calls as scope_calls
	d.reasons == ["call source 10.1.2.3 is not allowed for this API key"]
	v6 := realtime.connect with input as sip_input({"source": "2001:db9::5"})
		with data.ovos_gateway.config.scopes.realtime.calls as scope_calls
	v6.reasons == ["call source 2001:db9::5 is not allowed for this API key"]
}

test_connect_call_patterns_and_the_key_over_the_scope if {
	d := realtime.connect with input as sip_input({"from": "+4420", "to": "999"})
		with data.ovos_gateway.config.scopes.realtime.calls as scope_calls
		with data.ovos_gateway.config.keys as {"key_1": {"calls": {"callers": ["+1555*"]}}}
	d.reasons == ["called number '999' is not allowed for this API key", "caller '+4420' is not allowed for this API key"]
	realtime.connect.allow == true with input as sip_input({"to": "999", "source": "10.1.2.3"})
		with data.ovos_gateway.config.scopes.realtime.calls as scope_calls
		with data.ovos_gateway.config.keys as {"key_1": {"calls": {"sources": ["10.0.0.0/8"], "called": ["*"]}}}
}

test_connect_calls_restrict_calls_only if {
	realtime.connect.allow == true with input as connect_input
		with data.ovos_gateway.config.keys as {"key_1": {"calls": {"sources": []}}}
	d := realtime.connect with input as sip_input({})
		with data.ovos_gateway.config.keys as {"key_1": {"calls": {"sources": []}}}
	d.reasons == ["call source 192.0.2.10 is not allowed for this API key"]
}

test_connect_malformed_calls_data_denies_naming_the_path if {
	d := realtime.connect with input as connect_input
		with data.ovos_gateway.config.scopes.realtime.calls as ["192.0.2.0/24"]
		with data.ovos_gateway.config.keys as {"key_1": {"calls": {"sources": ["192.0.2.0/33"], "callers": ["+1[0-9]"], "from": []}}}
	d.allow == false
	d.reasons == [
		"data.ovos_gateway.config.keys['key_1'].calls has an unknown field 'from' (known: called, callers, sources)",
		"data.ovos_gateway.config.keys['key_1'].calls.callers must be an array of patterns (strings; * is the wildcard, ? [ ] { } \\ are reserved)",
		"data.ovos_gateway.config.keys['key_1'].calls.sources must be an array of CIDR ranges like 192.0.2.0/24 or 2001:db8::/32 (IPv4 ones in IPv4 form)",
		"data.ovos_gateway.config.scopes['realtime'].calls must be an object",
	]
}

test_connect_malformed_keys_deny if {
	d := realtime.connect with input as sip_input({})
		with data.ovos_gateway.config.keys as ["key_1"]
	d.reasons == ["data.ovos_gateway.config.keys must be an object"]
	e := realtime.connect with input as sip_input({})
		with data.ovos_gateway.config.keys as {"key_1": "calls"}
	e.reasons == ["data.ovos_gateway.config.keys['key_1'] must be an object"]
}
