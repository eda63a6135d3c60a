package gateway

import (
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// NewHarness starts a gateway on a real embedded NATS (JetStream) with a
// real store behind it, for the protocol tests of package gateway_test,
// which speak to it only over HTTP and WebSocket. It returns the address it
// serves on; everything stops when the test ends.
func NewHarness(t testing.TB, mod func(*Config)) (addr string, gw *Process) {
	e := newEnv(t, mod)
	return e.addr, e.gw
}

// harnessRegistries holds each harness gateway's metrics registry.
var harnessRegistries sync.Map // *Process -> *prometheus.Registry

// HarnessMetrics is the registry a harness gateway's metrics are on (the
// gateway does not serve them: the process does, on its metrics address).
func HarnessMetrics(gw *Process) prometheus.Gatherer {
	g, _ := harnessRegistries.Load(gw)
	return g.(prometheus.Gatherer)
}

// NewHarnessNATS is NewHarness that also returns the harness's NATS
// connection, for tests that make thousands of accounts through the store
// directly (a sign-up over HTTP costs an argon2id hash).
func NewHarnessNATS(t testing.TB, mod func(*Config)) (addr string, gw *Process, nc *nats.Conn) {
	e := newEnv(t, mod)
	return e.addr, e.gw, e.nc
}
