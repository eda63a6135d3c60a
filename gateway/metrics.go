package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Close and failure reasons: a fixed set, so metric labels stay bounded.
const (
	reasonClientClose    = "client_close"
	reasonReadError      = "read_error"
	reasonPingTimeout    = "ping_timeout"
	reasonSlowConsumer   = "slow_consumer"
	reasonTooLarge       = "too_large"
	reasonProtocolError  = "protocol_error"
	reasonDrain          = "drain"
	reasonShutdown       = "shutdown"
	reasonTokenExpired   = "token_expired"
	reasonRevoked        = "session_revoked"
	reasonReassemblyFull = "reassembly_full"

	failUnauthorized     = "unauthorized"
	failBadRequest       = "bad_request"
	failHandshakeTimeout = "handshake_timeout"
	failOverloaded       = "overloaded"
	failOrigin           = "origin"
)

// metrics is the gateway's instruments, registered on an injected registry.
type metrics struct {
	connections     prometheus.Gauge
	connects        prometheus.Counter
	disconnects     *prometheus.CounterVec
	upgradeFailures *prometheus.CounterVec
	authFailures    *prometheus.CounterVec
	framesIn        *prometheus.CounterVec
	framesOut       *prometheus.CounterVec
	bytesIn         prometheus.Counter
	bytesOut        prometheus.Counter
	slowConsumers   prometheus.Counter
	rateLimited     prometheus.Counter
	ackLatency      prometheus.Histogram
	fanoutLatency   prometheus.Histogram
	publishLatency  prometheus.Histogram
	ready           prometheus.Gauge
	draining        prometheus.Gauge

	// outByType caches framesOut's children: a label lookup per frame
	// would cost more than the rest of queueing it.
	outByType map[string]prometheus.Counter
}

// frameOut counts one frame queued to a client.
func (m *metrics) frameOut(typ string) {
	if c, ok := m.outByType[typ]; ok {
		c.Inc()
		return
	}
	m.framesOut.WithLabelValues(typ).Inc()
}

// latencyBuckets spans 100µs to ~6.5s.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2, 17)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_gateway_connections", Help: "Open WebSocket connections."}),
		connects:        prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_gateway_connects_total", Help: "Successful WebSocket upgrades."}),
		disconnects:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_gateway_disconnects_total", Help: "Closed WebSocket connections by reason."}, []string{"reason"}),
		upgradeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_gateway_upgrade_failures_total", Help: "Refused or failed WebSocket upgrades by reason."}, []string{"reason"}),
		authFailures:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_gateway_auth_failures_total", Help: "Failed logins and rejected tokens."}, []string{"kind"}),
		framesIn:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_gateway_frames_in_total", Help: "Client frames received by type."}, []string{"type"}),
		framesOut:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_gateway_frames_out_total", Help: "Frames queued to clients by type."}, []string{"type"}),
		bytesIn:         prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_gateway_received_bytes_total", Help: "WebSocket payload bytes received."}),
		bytesOut:        prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_gateway_sent_bytes_total", Help: "WebSocket bytes written to clients."}),
		slowConsumers:   prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_gateway_slow_consumers_total", Help: "Clients closed because they could not keep up."}),
		rateLimited:     prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_gateway_rate_limited_total", Help: "Requests refused by the per-connection rate limit."}),
		ackLatency:      prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chat_gateway_ack_latency_seconds", Help: "From a send frame read to its ack queued.", Buckets: latencyBuckets}),
		fanoutLatency:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chat_gateway_fanout_latency_seconds", Help: "From a message received from NATS to it being queued to every local member connection.", Buckets: latencyBuckets}),
		publishLatency:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chat_gateway_nats_publish_latency_seconds", Help: "From JetStream publish to PubAck.", Buckets: latencyBuckets}),
		ready:           prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_gateway_ready", Help: "1 while the gateway can serve (NATS connected, not draining)."}),
		draining:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_gateway_draining", Help: "1 while the gateway drains."}),
	}
	reg.MustRegister(m.connections, m.connects, m.disconnects, m.upgradeFailures, m.authFailures,
		m.framesIn, m.framesOut, m.bytesIn, m.bytesOut, m.slowConsumers, m.rateLimited,
		m.ackLatency, m.fanoutLatency, m.publishLatency, m.ready, m.draining)
	// Pre-create the label values so dashboards show zeros, not gaps.
	for _, r := range []string{reasonClientClose, reasonReadError, reasonPingTimeout, reasonSlowConsumer, reasonTooLarge, reasonProtocolError, reasonDrain, reasonShutdown, reasonTokenExpired} {
		m.disconnects.WithLabelValues(r)
	}
	for _, r := range []string{failUnauthorized, failBadRequest, failHandshakeTimeout, failOverloaded} {
		m.upgradeFailures.WithLabelValues(r)
	}
	for t := range knownTypes {
		m.framesIn.WithLabelValues(t)
	}
	m.framesIn.WithLabelValues("invalid")
	m.outByType = make(map[string]prometheus.Counter)
	for _, t := range []string{"hello", "ack", "message", "history", "read", "typing", "presence", "conversation", "error", "pong", "ping", "control", "event"} {
		m.outByType[t] = m.framesOut.WithLabelValues(t)
	}
	m.authFailures.WithLabelValues("login")
	m.authFailures.WithLabelValues("token")
	return m
}
