package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatcluster/chat/loadtest/internal/fakechat"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRunRefusesNonLoopback(t *testing.T) {
	_, err := Run(context.Background(), Options{Scenario: "idle", URL: "http://192.168.0.1:8080", Conns: 1})
	if !errors.Is(err, ErrNotLoopback) || !errors.Is(err, ErrBadOptions) {
		t.Fatalf("Run = %v, want ErrNotLoopback", err)
	}
}

func TestValidate(t *testing.T) {
	bad := []Options{
		{Scenario: "nope", URL: "http://127.0.0.1:1", Conns: 1},
		{Scenario: "idle", URL: "http://127.0.0.1:1", Conns: 0},
		{Scenario: "idle", URL: "http://127.0.0.1:1", Conns: MaxConns + 1},
		{Scenario: "idle", URL: "http://127.0.0.1:1", Conns: 1, Duration: 25 * time.Hour},
		{Scenario: "chat", URL: "http://127.0.0.1:1", Conns: 10, Group: 5, Senders: 1},
		{Scenario: "chat", URL: "http://127.0.0.1:1", Conns: 10, Group: 20, Senders: 1, Rate: 1},
		{Scenario: "broadcast", URL: "http://127.0.0.1:1", Conns: 10, Senders: 0, Rate: 1},
		{Scenario: "idle", URL: "http://127.0.0.1:1", Conns: 2, Procs: 3},
	}
	for _, o := range bad {
		o.Defaults()
		if err := o.Validate(); !errors.Is(err, ErrBadOptions) {
			t.Errorf("Validate(%+v) = %v, want ErrBadOptions", o, err)
		}
	}
}

func runFake(t *testing.T, fo fakechat.Options, o Options) (*Report, *fakechat.Server) {
	t.Helper()
	srv := fakechat.New(fo)
	t.Cleanup(srv.Close)
	o.URL = srv.URL()
	o.JSONPath = filepath.Join(t.TempDir(), "report.json")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var sum strings.Builder
	rep.WriteSummary(&sum)
	t.Log("\n" + sum.String())
	b, err := os.ReadFile(o.JSONPath)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("JSON report does not parse: %v", err)
	}
	if back.Raw.Acked != rep.Raw.Acked || back.E2ELatency != rep.E2ELatency {
		t.Fatal("JSON report differs from the returned one")
	}
	return rep, srv
}

func TestIdleAgainstFake(t *testing.T) {
	rep, srv := runFake(t, fakechat.Options{PingEvery: 50 * time.Millisecond},
		Options{Scenario: "idle", Conns: 60, Users: 20, Duration: 300 * time.Millisecond})
	if rep.Setup.SignupOK != 20 || rep.Connect.OK != 60 || rep.Connect.Failed != 0 {
		t.Fatalf("setup/connect: %+v %+v", rep.Setup, rep.Connect)
	}
	if rep.Hold.HeldAtEnd != 60 || rep.Hold.Dropped != 0 {
		t.Fatalf("hold: %+v (pings must be answered)", rep.Hold)
	}
	if srv.Upgrades.Load() != 60 || rep.FramesIn["hello"] != 60 {
		t.Fatalf("server saw %d upgrades, report %d hellos", srv.Upgrades.Load(), rep.FramesIn["hello"])
	}
	if rep.Gateway.Source != "metrics" || rep.Gateway.BytesPerConn != 10000 {
		t.Fatalf("gateway memory from /metrics: %+v", rep.Gateway)
	}
	if rep.Connect.PerSec <= 0 || rep.Connect.Latency.Count != 60 {
		t.Fatalf("connect rate/latency missing: %+v", rep.Connect)
	}
}

func TestChatAgainstFake(t *testing.T) {
	rep, _ := runFake(t, fakechat.Options{},
		Options{Scenario: "chat", Conns: 40, Group: 5, Senders: 8, Rate: 400, Duration: time.Second})
	m := rep.Messages
	if rep.Setup.Groups != 8 || rep.Senders != 8 {
		t.Fatalf("groups %d senders %d, want 8 and 8", rep.Setup.Groups, rep.Senders)
	}
	if m.Sent != 400 || m.Acked != 400 || m.Unacked != 0 {
		t.Fatalf("sent %d acked %d unacked %d, want 400/400/0", m.Sent, m.Acked, m.Unacked)
	}
	if m.Expected != 400*4 || m.Delivered != m.Expected || m.DeliveryRatio != 1 {
		t.Fatalf("delivered %d of %d", m.Delivered, m.Expected)
	}
	if rep.AckLatency.Count != 400 || rep.E2ELatency.Count != 1600 || rep.E2ELatency.P99Ms <= 0 || rep.E2ELatency.P99Ms > rep.E2ELatency.MaxMs {
		t.Fatalf("latencies: ack %+v e2e %+v", rep.AckLatency, rep.E2ELatency)
	}
	if m.SentPerSec < 390 || m.SentPerSec > 410 {
		t.Fatalf("sent %.1f/s, want 400/s", m.SentPerSec)
	}
}

func TestBroadcastCountsLossAndErrors(t *testing.T) {
	rep, _ := runFake(t, fakechat.Options{DropEvery: 10, RateLimitAfter: 15},
		Options{Scenario: "broadcast", Conns: 30, CreateBatch: 10, Senders: 2, Rate: 40, Duration: time.Second, DrainTimeout: 500 * time.Millisecond})
	m := rep.Messages
	// Each of the 2 senders sends 20; the last 5 of each are rate limited;
	// of the 30 that reach the fan-out, every 10th is silently dropped.
	if m.Sent != 40 || m.Errors["rate_limited"] != 10 || m.Acked != 27 || m.Unacked != 3 {
		t.Fatalf("sent %d acked %d unacked %d errors %v", m.Sent, m.Acked, m.Unacked, m.Errors)
	}
	if m.Expected != 27*29 || m.Delivered != m.Expected {
		t.Fatalf("delivered %d, expected %d", m.Delivered, m.Expected)
	}
	if len(rep.Warnings) == 0 {
		t.Fatal("no warning although sends went unanswered")
	}
}

func TestRepeatedPrefixLogsIn(t *testing.T) {
	srv := fakechat.New(fakechat.Options{})
	t.Cleanup(srv.Close)
	for run := 0; run < 2; run++ {
		rep, err := Run(context.Background(), Options{Scenario: "idle", URL: srv.URL(), Conns: 5, Prefix: "same", Duration: 50 * time.Millisecond})
		if err != nil || rep.Setup.SignupOK != 5 || rep.Connect.OK != 5 {
			t.Fatalf("run %d: %v, setup %+v connect %+v", run, err, rep.Setup, rep.Connect)
		}
	}
}

func TestUsersFileReuse(t *testing.T) {
	srv := fakechat.New(fakechat.Options{})
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), "users.json")
	want := []struct{ conns, reused, signedUp int }{{4, 0, 4}, {6, 4, 2}, {3, 3, 0}}
	for run, w := range want {
		rep, err := Run(context.Background(), Options{Scenario: "idle", URL: srv.URL(), Conns: w.conns, UsersFile: path, Duration: 50 * time.Millisecond})
		if err != nil || rep.Connect.OK != int64(w.conns) {
			t.Fatalf("run %d: %v, connect %+v", run, err, rep.Connect)
		}
		if rep.Setup.Reused != w.reused || rep.Setup.SignupOK != int64(w.signedUp) {
			t.Fatalf("run %d: reused %d signed up %d, want %d and %d", run, rep.Setup.Reused, rep.Setup.SignupOK, w.reused, w.signedUp)
		}
	}
	users, err := loadUsers(path)
	if err != nil || len(users) != 6 {
		t.Fatalf("users file holds %d users (%v), want 6", len(users), err)
	}
}

func TestResultMerge(t *testing.T) {
	var h1, h2 Histogram
	h1.Record(time.Millisecond)
	h2.Record(3 * time.Millisecond)
	a := Result{Workers: 1, ConnectOK: 3, ConnectErrors: map[string]int64{"timeout": 1}, Sent: 10, Delivered: 5,
		ConnectStartNs: 100, ConnectEndNs: 200, FirstDelivNs: 50, LastDelivNs: 60, AckLatency: h1.Snapshot(),
		MaxPaceLagNs: 7, Processes: []ProcUsage{{Role: "worker 0"}}}
	b := Result{Workers: 1, ConnectOK: 4, ConnectErrors: map[string]int64{"timeout": 2, "eof": 1}, Sent: 1, Delivered: 6,
		ConnectStartNs: 90, ConnectEndNs: 150, FirstDelivNs: 0, LastDelivNs: 70, AckLatency: h2.Snapshot(),
		MaxPaceLagNs: 3, Processes: []ProcUsage{{Role: "worker 1"}}}
	var m Result
	m.Merge(a)
	m.Merge(b)
	if m.Workers != 2 || m.ConnectOK != 7 || m.Sent != 11 || m.Delivered != 11 || m.MaxPaceLagNs != 7 {
		t.Fatalf("counters: %+v", m)
	}
	if m.ConnectErrors["timeout"] != 3 || m.ConnectErrors["eof"] != 1 {
		t.Fatalf("errors: %v", m.ConnectErrors)
	}
	if m.ConnectStartNs != 90 || m.ConnectEndNs != 200 || m.FirstDelivNs != 50 || m.LastDelivNs != 70 {
		t.Fatalf("spans: %+v", m)
	}
	if m.AckLatency.Count != 2 || m.AckLatency.Quantile(1) != 3*time.Millisecond || len(m.Processes) != 2 {
		t.Fatalf("histogram/processes: %+v", m.AckLatency)
	}
	if a.ConnectErrors["timeout"] != 1 {
		t.Fatal("merge modified its argument")
	}
	// The report flags a busy generator.
	r := &Report{Scenario: "chat", DurationS: 1}
	m.Processes = []ProcUsage{{Role: "worker 0", Phase: "run", WallS: 2, Cores: 0.9}, {Role: "parent", Phase: "setup", WallS: 5, Cores: 1.5}}
	r.fill(m, nil)
	if !r.Generator.MaybeBottleneck || r.Generator.MaxCores != 0.9 {
		t.Fatalf("bottleneck not flagged: %+v", r.Generator)
	}
}

func TestInterruptedRunStillReports(t *testing.T) {
	srv := fakechat.New(fakechat.Options{})
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, Options{Scenario: "chat", URL: srv.URL(), Conns: 10, Group: 5, Senders: 2, Rate: 20, Duration: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want deadline exceeded", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatalf("cancelled run took %v to stop", time.Since(start))
	}
	if rep == nil || !rep.Interrupted || rep.Connect.OK != 10 || rep.Messages.Sent == 0 || rep.Messages.Sent >= 1200 {
		t.Fatalf("report of the interrupted run: %+v", rep)
	}
}
