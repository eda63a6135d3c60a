package k8s

// knownMetrics is the list of Prometheus metrics that the chat binary
// registers, copied from notes/CONTRACT.md ("Prometheus metric names"). The
// dashboard and the alert rules may name only these (plus up, go_* and
// process_*, see allowedOther).
//
// The root module has a test that compares this table with what the code
// actually registers, so a renamed metric fails there instead of silently
// emptying a dashboard panel or disabling an alert.
//
// labels maps each label of the metric to its allowed values (nil: any
// value, the contract names none). Values marked "code" are ones the
// gateway's /metrics showed beyond CONTRACT.md's list.
var knownMetrics = map[string]metricInfo{
	// Gateway.
	"chat_gateway_connections":    {kind: gauge},
	"chat_gateway_connects_total": {kind: counter},
	"chat_gateway_disconnects_total": {kind: counter, labels: map[string][]string{
		"reason": {"client_close", "read_error", "ping_timeout", "slow_consumer", "too_large", "protocol_error", "drain", "shutdown",
			"token_expired",        // code
			"too_many_connections", // code: closed with 4029 (Config.MaxUserConnections)
		},
	}},
	"chat_gateway_upgrade_failures_total": {kind: counter, labels: map[string][]string{
		"reason": {"unauthorized", "bad_request", "handshake_timeout", "overloaded",
			"origin", // code: a cross-origin upgrade refused (gateway.Config.AllowedOrigins)
		},
	}},
	"chat_gateway_auth_failures_total": {kind: counter, labels: map[string][]string{
		"kind": {"login", "token"},
	}},
	// Client frame types (PROTOCOL.md) plus "invalid".
	"chat_gateway_frames_in_total": {kind: counter, labels: map[string][]string{
		"type": {"send", "history", "read", "typing", "ping", "invalid"},
	}},
	// Server frame types (PROTOCOL.md).
	"chat_gateway_frames_out_total": {kind: counter, labels: map[string][]string{
		"type": {"hello", "ack", "message", "history", "read", "typing", "presence", "conversation", "error", "pong",
			"ping", "control", "event", // code
		},
	}},
	"chat_gateway_received_bytes_total": {kind: counter},
	"chat_gateway_sent_bytes_total":     {kind: counter},
	"chat_gateway_slow_consumers_total": {kind: counter},
	"chat_gateway_rate_limited_total":   {kind: counter},
	// code: refusals by the login and signup throttles and the per-user limits (gateway/throttle.go)
	"chat_gateway_throttled_total": {kind: counter, labels: map[string][]string{
		"reason": {"login_pair", "login_account", "login_address", "signup_address", "user_connections", "user_rate"},
	}},
	"chat_gateway_ack_latency_seconds":          {kind: histogram},
	"chat_gateway_fanout_latency_seconds":       {kind: histogram},
	"chat_gateway_nats_publish_latency_seconds": {kind: histogram},
	"chat_gateway_ready":                        {kind: gauge},
	"chat_gateway_draining":                     {kind: gauge},

	// Store.
	"chat_store_messages_consumed_total":    {kind: counter},
	"chat_store_messages_written_total":     {kind: counter},
	"chat_store_messages_invalid_total":     {kind: counter}, // payloads that did not decode, terminated
	"chat_store_records_unknown_kind_total": {kind: counter}, // stream records of a kind this store does not know, terminated
	"chat_store_write_batch_messages":       {kind: histogram},
	"chat_store_backend_latency_seconds": {kind: histogram, labels: map[string][]string{
		"op": storeOps,
	}},
	"chat_store_backend_errors_total": {kind: counter, labels: map[string][]string{
		"op": storeOps,
	}},
	"chat_store_requests_total": {kind: counter, labels: map[string][]string{
		"op":     nil,
		"result": nil,
	}},
	"chat_store_consumer_pending_messages":     {kind: gauge},
	"chat_store_consumer_ack_pending_messages": {kind: gauge},
	"chat_store_consumer_redelivered_messages": {kind: gauge},
	"chat_store_ready":                         {kind: gauge},

	// Push (chat push, and in chat dev).
	"chat_push_messages_total": {kind: counter, labels: map[string][]string{
		"result": {"notified", "nobody", "stale", "skipped"},
	}},
	"chat_push_notifications_total": {kind: counter, labels: map[string][]string{
		"kind":   pushKinds,
		"result": {"sent", "gone", "dead", "duplicate"},
	}},
	"chat_push_dead_letters_total": {kind: counter, labels: map[string][]string{"kind": pushKinds}},
	"chat_push_retries_total":      {kind: counter, labels: map[string][]string{"kind": pushKinds}},
	"chat_push_delay_seconds":      {kind: histogram},
	"chat_push_pending_messages":   {kind: gauge},
	"chat_push_redeliveries_total": {kind: counter},
}

// pushKinds are the kind label values of the push metrics.
var pushKinds = []string{"gateway", "webpush"}

// storeOps are the op label values of the store backend metrics.
var storeOps = []string{"save_messages", "history", "conversations", "read", "account", "membership", "push"}

type metricKind int

const (
	gauge metricKind = iota
	counter
	histogram
)

type metricInfo struct {
	kind   metricKind
	labels map[string][]string
}

// targetLabels are added by Prometheus and the Prometheus Operator to every
// scraped series, so any metric may be filtered or grouped by them.
var targetLabels = map[string]bool{
	"namespace": true, "pod": true, "job": true, "instance": true,
	"service": true, "container": true, "endpoint": true,
}
