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
