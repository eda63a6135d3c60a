package store_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metricValue returns the value of the sample of name whose labels include
// the given name/value pairs (summed over the others); 0 when absent.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TestMetricNames checks that the Service exports the names of CONTRACT.md
// (dashboards and alerts use them) with their labels.
func TestMetricNames(t *testing.T) {
	e := newEnv(t)
	b := openBolt(t)
	cfg := fastConfig()
	s := startService(t, e, b, cfg)
	waitReady(t, s.svc)
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	_, last := newPublisher(t, e.js).publishN("11", 1, 10)
	if _, _, err := c.History(t.Context(), "11", chat.Page{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Account(t.Context(), "nobody"); err == nil {
		t.Fatal("account of nobody found")
	}
	if _, err := c.Conversations(t.Context(), 1, 0); err != nil {
		t.Fatal(err)
	}
	waitAcked(t, e, last)

	want := map[string]string{ // name -> type
		"chat_store_messages_consumed_total":       "COUNTER",
		"chat_store_messages_written_total":        "COUNTER",
		"chat_store_messages_invalid_total":        "COUNTER",
		"chat_store_records_unknown_kind_total":    "COUNTER",
		"chat_store_write_batch_messages":          "HISTOGRAM",
		"chat_store_backend_latency_seconds":       "HISTOGRAM",
		"chat_store_backend_errors_total":          "COUNTER",
		"chat_store_requests_total":                "COUNTER",
		"chat_store_consumer_pending_messages":     "GAUGE",
		"chat_store_consumer_ack_pending_messages": "GAUGE",
		"chat_store_consumer_redelivered_messages": "GAUGE",
		"chat_store_ready":                         "GAUGE",
	}
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
		typ, ok := want[mf.GetName()]
		if !ok {
			t.Errorf("unexpected metric %s", mf.GetName())
			continue
		}
		if mf.GetType().String() != typ {
			t.Errorf("%s is a %s, want %s", mf.GetName(), mf.GetType(), typ)
		}
	}
	// Vectors appear once used; every one was used above.
	for name := range want {
		if name == "chat_store_backend_errors_total" {
			continue // no backend error happened
		}
		if !slices.Contains(got, name) {
			t.Errorf("metric %s missing", name)
		}
	}
	if v := metricValue(t, s.reg, "chat_store_requests_total", "op", "history", "result", "ok"); v != 1 {
		t.Errorf("requests_total{history,ok} = %v", v)
	}
	if v := metricValue(t, s.reg, "chat_store_requests_total", "op", "account", "result", "not_found"); v != 1 {
		t.Errorf("requests_total{account,not_found} = %v", v)
	}
	for _, op := range []string{"save_messages", "history", "conversations"} {
		if v := metricValue(t, s.reg, "chat_store_backend_latency_seconds", "op", op); v < 1 {
			t.Errorf("backend_latency_seconds{op=%s} has %v samples", op, v)
		}
	}
	if v := metricValue(t, s.reg, "chat_store_write_batch_messages"); v < 1 {
		t.Errorf("write_batch_messages has %v samples", v)
	}

	// The consumer gauges follow the consumer: hold writes and see them
	// pending.
	b2 := &failingBackend{Backend: openBolt(t)}
	b2.fail.Store(true)
	e2 := newEnv(t)
	s2 := startService(t, e2, b2, cfg)
	newPublisher(t, e2.js).publishN("12", 1, 5)
	waitFor(t, 10*time.Second, func() error {
		ack := metricValue(t, s2.reg, "chat_store_consumer_ack_pending_messages")
		red := metricValue(t, s2.reg, "chat_store_consumer_redelivered_messages")
		if ack != 5 || red < 1 {
			return fmt.Errorf("ack pending %v, redelivered %v", ack, red)
		}
		return nil
	})
	b2.fail.Store(false)
	waitFor(t, 10*time.Second, func() error {
		if v := metricValue(t, s2.reg, "chat_store_consumer_ack_pending_messages"); v != 0 {
			return fmt.Errorf("ack pending %v", v)
		}
		return nil
	})
	if v := metricValue(t, s2.reg, "chat_store_consumer_pending_messages"); v != 0 {
		t.Errorf("pending = %v", v)
	}
}
