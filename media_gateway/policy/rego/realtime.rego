# METADATA
# title: ovos-media-gateway realtime access policy
# description: |
#   Decision points `mint`, `session_update` and `connect`. Each is an object
#   {"allow": bool, "reasons": [string], "retry_after_seconds": number | null, "limits": object}
#   and is always defined (a default denies). `reasons` is sorted and empty when allowed.
#   A reason starting with "rate_limited:" is a rate limit; `retry_after_seconds` is set only when
#   every reason is a rate limit (the HTTP layer answers 429 + Retry-After, otherwise 403).
#   `limits` holds the counted limits of the key's scope that apply to the request, each
#   {"max": int, "retry_after_seconds": number, "reason": string}: the decision uses the usage the
#   gateway counted before asking, and the gateway enforces `max` again atomically with its write
#   (other gateway processes may take slots meanwhile), refusing with `reason` (429) at the limit.
#   mint: concurrent_sessions and mints_per_minute; connect: concurrent_sessions; session_update: none.
#   connect also carries `ovos`: what the key's OVOS sessions look like, an object with any of
#     timezone (IANA zone name, e.g. "Europe/Lisbon"; used unless the session names its own),
#     pipeline ([string], OVOS pipeline stage names), system_unit ("metric" | "imperial"),
#     time_format ("half" | "full"), date_format ("MDY" | "DMY" | "YMD"),
#     blacklisted_skills ([string]), blacklisted_intents ([string]);
#   it is the scope's config.scopes.<scope>.ovos overridden field by field by
#   config.keys.<key id>.ovos (key ids look like key_<hex>), {} when neither is set. The gateway
#   validates it strictly: an unknown field, a wrong type or an unknown zone makes the decision
#   unavailable (fail closed), and so does data where `keys`, a key entry or an `ovos` is not an
#   object (then `ovos` is a string saying what is wrong).
#   connect decides phone calls too (transport "twilio" or "sip"; the other transports pass no call):
#   input.call is then {"from": string, "to": string, "source": string}, the caller (a SIP From URI user
#   part as it appears in the URI, or an E.164 number; "" when withheld), the called number or user
#   ("" when unknown) and the IP address the call came from (IPv4 or IPv6; an IPv4-mapped IPv6
#   address counts as IPv4). A phone transport without a well-formed call, or a call on another
#   transport, is denied. Which calls a key may take: `calls`, the scope's config.scopes.<scope>.calls
#   overridden field by field by config.keys.<key id>.calls, an object with any of
#     sources ([string], CIDR ranges such as "192.0.2.0/24" or "2001:db8::/32", prefix length without
#       leading zeros; IPv4 ranges in IPv4 form, an IPv6 range never matches an IPv4 source),
#     callers ([string], patterns `from` must match), called ([string], patterns `to` must match);
#   a pattern is literal but for `*`, any run of characters (none too: "*" also matches ""); the
#   characters ? [ ] { } and backslash are reserved. An absent list allows anything, a present one
#   must have an entry that matches (so [] refuses every call). Only calls are restricted: the
#   WebSocket and WebRTC transports ignore `calls`. Malformed `calls` data (not an object, an unknown
#   field, a list that is not an array of valid entries) denies every connect of the key, with a
#   reason naming the data path.
#   Configuration: data.ovos_gateway.config (data.json next to this file).
#   Input documents: media_gateway/policy/inputs.py.
#   OPA REST: POST /v1/data/ovos_gateway/realtime/<point> {"input": ...}
package ovos_gateway.realtime

# Portability rule (OPA and regorus must agree): never call a function under `not` with an argument that
# can be undefined. OPA hoists such arguments out of the negation (so the whole body is undefined), regorus
# does not. All input access therefore goes through get(), which is never undefined, and the data
# document through cfg, which has a default.

default cfg := {}

cfg := data.ovos_gateway.config

config_ok if is_object(data.ovos_gateway.config)

conf(name) := object.get(cfg, name, [])

rate_limited_prefix := "rate_limited:"

# ---------------------------------------------------------------------------------------------------
# Decision documents
# ---------------------------------------------------------------------------------------------------

default mint := {
	"allow": false,
	"reasons": ["policy error: the mint decision could not be evaluated"],
	"retry_after_seconds": null,
	"limits": {},
}

mint := decision(mint_reasons, mint_retry_hints, limit_docs(mint_limits))

default session_update := {
	"allow": false,
	"reasons": ["policy error: the session_update decision could not be evaluated"],
	"retry_after_seconds": null,
	"limits": {},
}

session_update := decision(session_update_reasons, set(), {})

default connect := {
	"allow": false,
	"reasons": ["policy error: the connect decision could not be evaluated"],
	"retry_after_seconds": null,
	"limits": {},
	"ovos": {},
}

connect := object.union(
	decision(connect_reasons, connect_retry_hints, limit_docs(connect_limits)),
	{"ovos": connect_ovos},
)

decision(reasons, hints, enforced) := {
	"allow": count(reasons) == 0,
	"reasons": sort([r | some r in reasons]),
	"retry_after_seconds": retry_after(reasons, hints),
	"limits": enforced,
}

# A set of [name, limit] pairs as the `limits` object (a limit the scope does not define is absent).
limit_docs(pairs) := {name: doc | some [name, doc] in pairs}

# True when the decision denies for rate limits only (a retry later can succeed).
only_rate_limited(reasons) if {
	count(reasons) > 0
	every r in reasons {
		startswith(r, rate_limited_prefix)
	}
}

retry_after(reasons, hints) := max(hints) if {
	only_rate_limited(reasons)
	count(hints) > 0
}

retry_after(reasons, _) := null if not only_rate_limited(reasons)

retry_after(_, hints) := null if count(hints) == 0

# ---------------------------------------------------------------------------------------------------
# Value helpers
# ---------------------------------------------------------------------------------------------------

# get(obj, name) is obj[name], or null when obj is not an object or has no such field; never undefined.
get(obj, name) := object.get(obj, name, null) if is_object(obj)

get(obj, _) := null if not is_object(obj)

is_int(x) if {
	is_number(x)
	round(x) == x
}

is_non_negative_int(x) if {
	is_int(x)
	x >= 0
}

is_non_empty_string(x) if {
	is_string(x)
	x != ""
}

# Reasons every decision point shares.
common_reasons contains "policy configuration (data.ovos_gateway.config) is not loaded" if not config_ok

common_reasons contains r if some r in key_reasons

# ---------------------------------------------------------------------------------------------------
# API key and scope (common to all decision points)
# ---------------------------------------------------------------------------------------------------

key := get(input, "key")

key_scopes := get(key, "scopes")

valid_scopes if {
	is_array(key_scopes)
	every s in key_scopes {
		is_string(s)
	}
}

# The most privileged recognised scope of the key (order: scope_precedence in the data document).
matching_scopes := [s | some s in conf("scope_precedence"); valid_scopes; s in key_scopes]

scope_known if count(matching_scopes) > 0

default scope := ""

scope := matching_scopes[0] if scope_known

default limits := {}

limits := object.get(object.get(cfg, "scopes", {}), scope, {}) if scope_known

key_reasons contains "request has no API key" if not is_object(key)

key_reasons contains "key.id must be a non-empty string" if {
	is_object(key)
	not is_non_empty_string(get(key, "id"))
}

key_reasons contains "key.revoked must be a boolean" if {
	is_object(key)
	not is_boolean(get(key, "revoked"))
}

key_reasons contains "API key has been revoked" if get(key, "revoked") == true

key_reasons contains "key.scopes must be an array of strings" if {
	is_object(key)
	not valid_scopes
}

key_reasons contains "API key has no scope that permits realtime access" if {
	valid_scopes
	not scope_known
}

# ---------------------------------------------------------------------------------------------------
# Session summary (mint: input.request.session; session_update: input.requested)
# ---------------------------------------------------------------------------------------------------

summary_reasons(s) := {"session must be an object"} if not is_object(s)

summary_reasons(s) := union({
	summary_type_reasons(s),
	summary_model_reasons(s),
	summary_voice_reasons(s),
	summary_modality_reasons(s),
	summary_output_token_reasons(s),
	summary_count_reasons(s, "tools_count", "max_tools", "tools"),
	summary_count_reasons(s, "instructions_length", "max_instructions_length", "instruction characters"),
}) if is_object(s)

summary_type_reasons(s) := {msg |
	not object.get(s, "type", null) in conf("session_types")
	msg := sprintf("session.type must be one of: %s", [concat(", ", conf("session_types"))])
}

allowed_models(type) := object.get(limits, "models", []) if type == "realtime"

allowed_models(type) := object.get(limits, "transcription_models", []) if type == "transcription"

allowed_models(type) := [] if not type in {"realtime", "transcription"}

summary_model_reasons(s) := {"session.model must be a non-empty string" |
	not is_non_empty_string(object.get(s, "model", null))
} | {msg |
	model := object.get(s, "model", null)
	is_non_empty_string(model)
	scope_known
	object.get(s, "type", null) in conf("session_types")
	not model in allowed_models(object.get(s, "type", null))
	msg := sprintf("model '%s' is not allowed for this API key (scope '%s')", [model, scope])
}

summary_voice_reasons(s) := {"session.voice must be a string" |
	voice := object.get(s, "voice", null)
	voice != null
	not is_string(voice)
} | {msg |
	voice := object.get(s, "voice", null)
	is_string(voice)
	not voice in conf("voices")
	msg := sprintf("voice '%s' is not available", [voice])
}

valid_modalities(m) if {
	is_array(m)
	count(m) > 0
	every x in m {
		x in conf("output_modalities")
	}
}

summary_modality_reasons(s) := {msg |
	modalities := object.get(s, "output_modalities", null)
	modalities != null
	not valid_modalities(modalities)
	msg := sprintf(
		"session.output_modalities must be a non-empty array of: %s",
		[concat(", ", conf("output_modalities"))],
	)
}

valid_output_tokens(x) if x == "inf"

valid_output_tokens(x) if {
	is_int(x)
	x >= 1
}

within_output_token_limit(_) if limits.max_output_tokens == "inf"

within_output_token_limit(x) if {
	is_number(limits.max_output_tokens)
	is_number(x)
	x <= limits.max_output_tokens
}

summary_output_token_reasons(s) := {"session.max_output_tokens must be a positive integer or 'inf'" |
	tokens := object.get(s, "max_output_tokens", null)
	tokens != null
	not valid_output_tokens(tokens)
} | {msg |
	tokens := object.get(s, "max_output_tokens", null)
	valid_output_tokens(tokens)
	scope_known
	not within_output_token_limit(tokens)
	msg := sprintf(
		"session.max_output_tokens exceeds the limit of %v for this API key (scope '%s')",
		[object.get(limits, "max_output_tokens", null), scope],
	)
}

# Optional non-negative integer field `field` bounded by limits[limit_name] (a missing limit denies).
summary_count_reasons(s, field, limit_name, what) := {msg |
	value := object.get(s, field, null)
	value != null
	not is_non_negative_int(value)
	msg := sprintf("session.%s must be a non-negative integer", [field])
} | {msg |
	value := object.get(s, field, null)
	is_non_negative_int(value)
	scope_known
	not within_limit(value, object.get(limits, limit_name, null))
	msg := sprintf(
		"session has more than %v %s, the limit for this API key (scope '%s')",
		[object.get(limits, limit_name, null), what, scope],
	)
}

within_limit(value, limit) if {
	is_number(limit)
	value <= limit
}

# ---------------------------------------------------------------------------------------------------
# mint: POST /v1/realtime/client_secrets
# ---------------------------------------------------------------------------------------------------

request := get(input, "request")

usage := get(input, "usage")

ttl := get(request, "ttl_seconds")

mints_last_minute := get(usage, "mints_last_minute")

concurrent_sessions := get(usage, "concurrent_sessions")

mint_reasons contains r if some r in common_reasons

mint_reasons contains "request must be an object" if not is_object(request)

mint_reasons contains r if {
	is_object(request)
	some r in summary_reasons(get(request, "session"))
}

mint_reasons contains "request.ttl_seconds must be an integer" if {
	is_object(request)
	not is_int(ttl)
}

mint_reasons contains msg if {
	is_int(ttl)
	not at_least(ttl, object.get(cfg, "min_ttl_seconds", null))
	msg := sprintf("request.ttl_seconds must be at least %v", [object.get(cfg, "min_ttl_seconds", null)])
}

mint_reasons contains msg if {
	is_int(ttl)
	scope_known
	not within_limit(ttl, object.get(limits, "max_ttl_seconds", null))
	msg := sprintf(
		"request.ttl_seconds exceeds the maximum of %v for this API key (scope '%s')",
		[object.get(limits, "max_ttl_seconds", null), scope],
	)
}

mint_reasons contains "usage.mints_last_minute must be a non-negative integer" if {
	not is_non_negative_int(mints_last_minute)
}

mint_reasons contains "usage.concurrent_sessions must be a non-negative integer" if {
	not is_non_negative_int(concurrent_sessions)
}

# The gateway counts mints in the last minute *before* this one, so reaching the limit denies.
mint_rate_exceeded if {
	scope_known
	is_non_negative_int(mints_last_minute)
	not below_limit(mints_last_minute, object.get(limits, "mints_per_minute", null))
}

at_least(value, limit) if {
	is_number(limit)
	value >= limit
}

below_limit(value, limit) if {
	is_number(limit)
	value < limit
}

mint_reasons contains mint_rate_reason if mint_rate_exceeded

mint_rate_reason := sprintf(
	"%s mint limit of %v per minute reached for this API key (scope '%s')",
	[rate_limited_prefix, object.get(limits, "mints_per_minute", null), scope],
)

mint_reasons contains concurrent_sessions_reason if concurrent_sessions_exceeded

retry_hint(name) := v if {
	v := object.get(object.get(cfg, "retry_after_seconds", {}), name, 60)
	is_number(v)
}

# When the gateway knows when its sliding window frees a slot it passes
# usage.mint_window_resets_in_seconds; otherwise the data document's fixed hint applies.
window_reset := get(usage, "mint_window_resets_in_seconds")

positive_window_reset if {
	is_number(window_reset)
	window_reset > 0
}

mint_retry_hints contains window_reset if {
	mint_rate_exceeded
	positive_window_reset
}

mint_retry_hints contains retry_hint("mint_rate") if {
	mint_rate_exceeded
	not positive_window_reset
}

mint_retry_hints contains retry_hint("concurrent_sessions") if concurrent_sessions_exceeded

concurrent_sessions_exceeded if {
	scope_known
	is_non_negative_int(concurrent_sessions)
	not below_limit(concurrent_sessions, object.get(limits, "concurrent_sessions", null))
}

concurrent_sessions_reason := sprintf(
	"%s concurrent session limit of %v reached for this API key (scope '%s')",
	[rate_limited_prefix, object.get(limits, "concurrent_sessions", null), scope],
)

# The counted limits the gateway enforces (see the METADATA description). Defined only when the scope
# sets the limit to a non-negative integer and its retry hint is a number.
counted_limit(name, hint, reason) := {
	"max": n,
	"retry_after_seconds": retry_hint(hint),
	"reason": reason,
} if {
	scope_known
	n := object.get(limits, name, null)
	is_non_negative_int(n)
}

mint_limits contains ["concurrent_sessions", counted_limit("concurrent_sessions", "concurrent_sessions", concurrent_sessions_reason)]

mint_limits contains ["mints_per_minute", counted_limit("mints_per_minute", "mint_rate", mint_rate_reason)]

connect_limits contains ["concurrent_sessions", counted_limit("concurrent_sessions", "concurrent_sessions", concurrent_sessions_reason)]

# ---------------------------------------------------------------------------------------------------
# session_update: a client's session.update on a live session
# ---------------------------------------------------------------------------------------------------

live_session := get(input, "session")

current := get(input, "current")

requested := get(input, "requested")

session_update_reasons contains r if some r in common_reasons

session_update_reasons contains "session.id must be a non-empty string" if {
	not is_non_empty_string(get(live_session, "id"))
}

session_update_reasons contains "current must be an object" if not is_object(current)

session_update_reasons contains r if some r in summary_reasons(requested)

session_update_reasons contains "session type cannot be changed after the session has started" if {
	is_string(get(requested, "type"))
	is_string(get(live_session, "type"))
	get(requested, "type") != get(live_session, "type")
}

# The model may change mid-session to any model the key may use: on this gateway a model name selects
# no different engine, and the Agents SDKs resend their own default model in every session.update.

# ---------------------------------------------------------------------------------------------------
# connect: a WebSocket or WebRTC connection, or a phone call (Twilio, SIP), opening a session
# ---------------------------------------------------------------------------------------------------

secret := get(input, "secret")

connect_reasons contains r if some r in common_reasons

connect_reasons contains msg if {
	not get(input, "transport") in conf("transports")
	msg := sprintf("transport must be one of: %s", [concat(", ", conf("transports"))])
}

connect_reasons contains "usage.concurrent_sessions must be a non-negative integer" if {
	not is_non_negative_int(concurrent_sessions)
}

connect_reasons contains concurrent_sessions_reason if concurrent_sessions_exceeded

connect_retry_hints contains retry_hint("concurrent_sessions") if concurrent_sessions_exceeded

# Without a client secret the caller authenticated with the API key itself.
connect_reasons contains "this API key must connect with an ephemeral client secret" if {
	secret == null
	scope_known
	object.get(limits, "allow_direct_connect", false) != true
}

connect_reasons contains "secret must be an object or null" if {
	secret != null
	not is_object(secret)
}

connect_reasons contains "secret.id must be a non-empty string" if {
	is_object(secret)
	not is_non_empty_string(get(secret, "id"))
}

connect_reasons contains "secret.expired must be a boolean" if {
	is_object(secret)
	not is_boolean(get(secret, "expired"))
}

connect_reasons contains "client secret has expired" if get(secret, "expired") == true

connect_reasons contains "secret.revoked must be a boolean" if {
	is_object(secret)
	not is_boolean(get(secret, "revoked"))
}

connect_reasons contains "client secret has been revoked" if get(secret, "revoked") == true

connect_reasons contains "secret.live_connections and secret.max_live_connections must be non-negative integers" if {
	is_object(secret)
	not valid_secret_counts
}

valid_secret_counts if {
	is_non_negative_int(get(secret, "live_connections"))
	is_non_negative_int(get(secret, "max_live_connections"))
}

connect_reasons contains msg if {
	valid_secret_counts
	not below_limit(get(secret, "live_connections"), get(secret, "max_live_connections"))
	msg := sprintf(
		"client secret already has the maximum of %v live connection(s)",
		[get(secret, "max_live_connections")],
	)
}

# ---------------------------------------------------------------------------------------------------
# connect: the key's OVOS session fields (see the METADATA description)
# ---------------------------------------------------------------------------------------------------

ovos_keys := get(cfg, "keys")

key_id := get(key, "id")

key_entry := get(ovos_keys, key_id)

scope_ovos := get(limits, "ovos")

key_ovos := get(key_entry, "ovos")

object_or_null(x) if x == null

object_or_null(x) if is_object(x)

as_object(x) := x if is_object(x)

as_object(x) := {} if not is_object(x)

ovos_data_problems contains "data.ovos_gateway.config.keys must be an object" if {
	not object_or_null(ovos_keys)
}

ovos_data_problems contains msg if {
	not object_or_null(key_entry)
	msg := sprintf("data.ovos_gateway.config.keys['%v'] must be an object", [key_id])
}

ovos_data_problems contains msg if {
	not object_or_null(key_ovos)
	msg := sprintf("data.ovos_gateway.config.keys['%v'].ovos must be an object", [key_id])
}

ovos_data_problems contains msg if {
	not object_or_null(scope_ovos)
	msg := sprintf("data.ovos_gateway.config.scopes['%s'].ovos must be an object", [scope])
}

# The scope's fields with the key's on top; malformed data yields a string the gateway refuses.
connect_ovos := object.union(as_object(scope_ovos), as_object(key_ovos)) if count(ovos_data_problems) == 0

connect_ovos := concat("; ", sort([p | some p in ovos_data_problems])) if count(ovos_data_problems) > 0

# ---------------------------------------------------------------------------------------------------
# connect: phone calls, on the call's facts (see the METADATA description)
# ---------------------------------------------------------------------------------------------------
#
# Engine agreement: glob.match and the net.cidr_* builtins raise on malformed arguments in regorus (OPA
# makes them undefined), so they only ever see validated patterns, ranges and addresses. regorus matches
# `?` byte by byte (OPA character by character), hence patterns know `*` only. OPA's net.cidr_contains
# treats IPv4-mapped IPv6 addresses as IPv4, regorus by their written family, hence the explicit mapping.

phone_transports := {"twilio", "sip"}

transport := get(input, "transport")

call := get(input, "call")

phone_call if transport in phone_transports

connect_reasons contains msg if {
	phone_call
	not is_object(call)
	msg := sprintf("call must be an object for transport '%s'", [transport])
}

connect_reasons contains msg if {
	transport in conf("transports")
	not phone_call
	call != null
	msg := sprintf("call must be null for transport '%s'", [transport])
}

connect_reasons contains "call.from must be a string" if {
	is_object(call)
	not is_string(get(call, "from"))
}

connect_reasons contains "call.to must be a string" if {
	is_object(call)
	not is_string(get(call, "to"))
}

connect_reasons contains "call.source must be an IPv4 or IPv6 address" if {
	is_object(call)
	not is_ip(get(call, "source"))
}

is_ip(x) if {
	is_string(x)
	not contains(x, ":")
	net.cidr_is_valid(concat("", [x, "/32"]))
}

is_ip(x) if {
	is_string(x)
	contains(x, ":")
	net.cidr_is_valid(concat("", [x, "/128"]))
}

# A valid address written as IPv4, or IPv4-mapped IPv6 (::ffff:a.b.c.d): both engines agree on this range.
ipv4_like(ip) if not contains(ip, ":")

ipv4_like(ip) if {
	contains(ip, ":")
	net.cidr_contains("::ffff:0:0/96", ip)
}

# A range of `sources`: a valid CIDR with a plain decimal prefix length, IPv4 ranges not written as IPv6.
valid_cidr(c) if {
	is_string(c)
	regex.match(`^[0-9A-Fa-f:.]+/(0|[1-9][0-9]?[0-9]?)$`, c)
	net.cidr_is_valid(c)
	not contains(c, ":")
}

valid_cidr(c) if {
	is_string(c)
	regex.match(`^[0-9A-Fa-f:.]+/(0|[1-9][0-9]?[0-9]?)$`, c)
	net.cidr_is_valid(c)
	contains(c, ":")
	not ipv4_like(split(c, "/")[0])
}

valid_pattern(p) if {
	is_string(p)
	not regex.match(`[?\[\]{}\\]`, p)
}

valid_cidrs(x) if {
	is_array(x)
	every c in x {
		valid_cidr(c)
	}
}

valid_patterns(x) if {
	is_array(x)
	every p in x {
		valid_pattern(p)
	}
}

# Only called with a valid range and a valid address.
in_range(c, ip) if {
	not contains(c, ":")
	not contains(ip, ":")
	net.cidr_contains(c, ip)
}

in_range(c, ip) if {
	not contains(c, ":")
	contains(ip, ":")
	ipv4_like(ip)
	parts := split(c, "/")
	net.cidr_contains(sprintf("::ffff:%s/%v", [parts[0], to_number(parts[1]) + 96]), ip)
}

in_range(c, ip) if {
	contains(c, ":")
	not ipv4_like(ip)
	net.cidr_contains(c, ip)
}

source_allowed(ranges, ip) if {
	some c in ranges
	in_range(c, ip)
}

pattern_allowed(patterns, value) if {
	some p in patterns
	glob.match(p, null, value)
}

# --- the `calls` data of the key's scope and of the key ------------------------------------------------

calls_fields := {"sources", "callers", "called"}

scope_calls := get(limits, "calls")

key_calls := get(key_entry, "calls")

calls_problems(calls, path) := {sprintf("%s must be an object", [path])} if {
	calls != null
	not is_object(calls)
}

calls_problems(calls, _) := set() if calls == null

calls_problems(calls, path) := union({
	calls_field_problems(calls, path),
	calls_sources_problems(calls, path),
	calls_pattern_problems(calls, path),
}) if is_object(calls)

calls_field_problems(calls, path) := {msg |
	some name, _ in calls
	not name in calls_fields
	msg := sprintf("%s has an unknown field '%v' (known: called, callers, sources)", [path, name])
}

calls_sources_problems(calls, path) := {msg |
	not valid_cidrs(object.get(calls, "sources", []))
	msg := sprintf(
		"%s.sources must be an array of CIDR ranges like 192.0.2.0/24 or 2001:db8::/32 (IPv4 ones in IPv4 form)",
		[path],
	)
}

calls_pattern_problems(calls, path) := {msg |
	some name in ["callers", "called"]
	not valid_patterns(object.get(calls, name, []))
	msg := sprintf(
		"%s.%s must be an array of patterns (strings; * is the wildcard, ? [ ] { } \\ are reserved)",
		[path, name],
	)
}

calls_data_problems contains "data.ovos_gateway.config.keys must be an object" if not object_or_null(ovos_keys)

calls_data_problems contains msg if {
	not object_or_null(key_entry)
	msg := sprintf("data.ovos_gateway.config.keys['%v'] must be an object", [key_id])
}

calls_data_problems contains p if {
	some p in calls_problems(scope_calls, sprintf("data.ovos_gateway.config.scopes['%s'].calls", [scope]))
}

calls_data_problems contains p if {
	some p in calls_problems(key_calls, sprintf("data.ovos_gateway.config.keys['%v'].calls", [key_id]))
}

connect_reasons contains p if some p in calls_data_problems

# The scope's lists with the key's on top; only consulted when all of it is well-formed.
call_rules := object.union(as_object(scope_calls), as_object(key_calls)) if count(calls_data_problems) == 0

connect_reasons contains msg if {
	phone_call
	source := get(call, "source")
	is_ip(source)
	ranges := object.get(call_rules, "sources", null)
	ranges != null
	not source_allowed(ranges, source)
	msg := sprintf("call source %s is not allowed for this API key", [source])
}

connect_reasons contains msg if {
	phone_call
	caller := get(call, "from")
	is_string(caller)
	patterns := object.get(call_rules, "callers", null)
	patterns != null
	not pattern_allowed(patterns, caller)
	msg := sprintf("caller '%s' is not allowed for this API key", [caller])
}

connect_reasons contains msg if {
	phone_call
	called := get(call, "to")
	is_string(called)
	patterns := object.get(call_rules, "called", null)
	patterns != null
	not pattern_allowed(patterns, called)
	msg := sprintf("called number '%s' is not allowed for this API key", [called])
}
