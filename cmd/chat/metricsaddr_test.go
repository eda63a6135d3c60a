package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// getText answers a GET's status and body ("" and an error when nothing
// answered).
func getText(hc *http.Client, u string) (int, string, error) {
	resp, err := hc.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b), err
}

// checkMetricsApart checks that public (a base URL) serves no /metrics and
// no profiler while metrics (a base URL) serves both, with want among the
// metrics.
func checkMetricsApart(t *testing.T, hc *http.Client, public, metrics, want string) {
	t.Helper()
	for _, p := range []string{"metrics", "debug/pprof/", "debug/pprof/cmdline"} {
		status, body, err := getText(hc, public+p)
		if err != nil {
			t.Fatalf("public port: %v", err)
		}
		if status != http.StatusNotFound || strings.Contains(body, "go_goroutines") || strings.Contains(body, "goroutine") {
			t.Errorf("public port serves /%s: %d %.200s", p, status, body)
		}
	}
	status, body, err := getText(hc, metrics+"metrics")
	if err != nil || status != http.StatusOK || !strings.Contains(body, "\ngo_goroutines ") || !strings.Contains(body, "# TYPE "+want+" ") {
		t.Errorf("metrics address /metrics: %d %v, want Prometheus text with go_goroutines and %s", status, err, want)
	}
	if status, body, err := getText(hc, metrics+"debug/pprof/"); err != nil || status != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("metrics address /debug/pprof/: %d %v", status, err)
	}
}

// chat dev serves /metrics and the profiler on its metrics address only.
func TestDevMetricsAddress(t *testing.T) {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := startDev(ctx, devOptions{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Pprof: true, Data: t.TempDir(),
		JWTSecret: "metrics-addr-secret-0123456789", Drain: time.Second}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	if d.MetricsURL == "" || d.MetricsURL == d.URL {
		t.Fatalf("metrics at %q, public at %q: want another address", d.MetricsURL, d.URL)
	}
	checkMetricsApart(t, hc, d.URL, d.MetricsURL, "chat_gateway_connections")

	// Without --pprof the metrics address has no profiler either.
	d2, err := startDev(ctx, devOptions{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Data: t.TempDir(),
		JWTSecret: "metrics-addr-secret-0123456789", Drain: time.Second}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close(context.Background())
	if status, _, err := getText(hc, d2.MetricsURL+"debug/pprof/"); err != nil || status != http.StatusNotFound {
		t.Errorf("profiler without --pprof: %d %v, want 404", status, err)
	}
}

// chat gateway, store and push: the public (or health) port has no
// /metrics, --metrics-addr has it (and the profiler with --pprof).
func TestCommandsMetricsAddress(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	for _, c := range []struct {
		cmd  string
		args []string
		want string // a metric of the command's own
	}{
		{"gateway", []string{"--jwt-secret", "metrics-addr-secret-0123456789"}, "chat_gateway_connections"},
		// No Cassandra here: the store serves health and metrics while it
		// waits for one.
		{"store", []string{"--cassandra", "127.0.0.1:1"}, "go_goroutines"},
		{"push", nil, "chat_push_pending_messages"},
	} {
		t.Run(c.cmd, func(t *testing.T) {
			public := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
			metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
			args := append([]string{"--addr", public, "--metrics-addr", metrics, "--pprof", "--nats", ns.ClientURL(), "--log-level", "error"}, c.args...)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- commands[c.cmd](ctx, args) }()
			defer func() {
				cancel()
				select {
				case err := <-done:
					if err != nil && !strings.Contains(err.Error(), "context canceled") {
						t.Logf("chat %s: %v", c.cmd, err)
					}
				case <-time.After(time.Minute):
					t.Fatalf("chat %s did not stop", c.cmd)
				}
			}()
			if err := pollUntil(30*time.Second, 50*time.Millisecond, func() error {
				status, body, err := getText(hc, "http://"+metrics+"/metrics")
				if err != nil || status != http.StatusOK || !strings.Contains(body, "# TYPE "+c.want+" ") {
					return fmt.Errorf("metrics: %d %v", status, err)
				}
				if status, _, err := getText(hc, "http://"+public+"/healthz"); err != nil || status != http.StatusOK {
					return fmt.Errorf("healthz: %d %v", status, err)
				}
				return nil
			}); err != nil {
				t.Fatalf("chat %s: %v", c.cmd, err)
			}
			checkMetricsApart(t, hc, "http://"+public+"/", "http://"+metrics+"/", c.want)
		})
	}
}
