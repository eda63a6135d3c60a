package push

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Labels of the push metrics: bounded sets, never a user or a conversation.
const (
	kindGateway = "gateway"
	kindWebPush = "webpush"

	resultSent      = "sent"      // the endpoint accepted it
	resultGone      = "gone"      // the device no longer exists: removed from the store
	resultDead      = "dead"      // given up after retries or refused for good: dead-lettered
	resultDuplicate = "duplicate" // already sent before a restart: not sent again
)

type metrics struct {
	messages      *prometheus.CounterVec
	notifications *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	retries       *prometheus.CounterVec
	delay         prometheus.Histogram
	pending       prometheus.Gauge
	naks          prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_push_messages_total",
			Help: "Messages of the stream the push service decided on, by outcome: notified (at least one device was sent to), nobody (no offline unread member with a device), stale (older than the max age when first seen), skipped (not a new message).",
		}, []string{"result"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_push_notifications_total",
			Help: "Notifications by delivery kind and result: sent, gone (device removed), dead (dead-lettered), duplicate (already sent before a restart).",
		}, []string{"kind", "result"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_push_dead_letters_total",
			Help: "Notifications given up on after the last retry or refused for good by the endpoint.",
		}, []string{"kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_push_retries_total",
			Help: "Send attempts that failed and were retried after a backoff.",
		}, []string{"kind"}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chat_push_delay_seconds",
			Help:    "From a message's sent_at to its notification accepted by the endpoint (the configured delay included).",
			Buckets: []float64{0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 30, 60, 120, 300},
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_push_pending_messages",
			Help: "Messages received and not yet decided (waiting out the delay or being sent).",
		}),
		naks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_push_redeliveries_total",
			Help: "Messages handed back to JetStream for a later try because the store or the dedup bucket did not answer.",
		}),
	}
	for _, c := range []prometheus.Collector{m.messages, m.notifications, m.deadLetters, m.retries, m.delay, m.pending, m.naks} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{"notified", "nobody", "stale", "skipped"} {
		m.messages.WithLabelValues(r)
	}
	for _, k := range []string{kindGateway, kindWebPush} {
		m.deadLetters.WithLabelValues(k)
		m.retries.WithLabelValues(k)
		for _, r := range []string{resultSent, resultGone, resultDead, resultDuplicate} {
			m.notifications.WithLabelValues(k, r)
		}
	}
	return m, nil
}
