package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// BottleneckCores is the CPU share of one core above which a generator
// process may itself be the bottleneck of what it measures.
const BottleneckCores = 0.70

// SenderRateHint is the per-sender rate the defaults aim at; the gateway
// allows 20 requests per second per connection by default (burst 50).
const SenderRateHint = 10.0

// gatewaySendRate is the gateway's default per-connection request rate.
const gatewaySendRate = 20.0

// Report is the outcome of a run: what the human summary prints and what
// --json writes. Rates and percentiles are derived from Raw, which keeps
// the mergeable counters and histograms.
type Report struct {
	Scenario  string    `json:"scenario"`
	URL       string    `json:"url"`
	StartedAt time.Time `json:"started_at"`
	Procs     int       `json:"procs"`
	Conns     int       `json:"conns"`
	Group     int       `json:"group,omitempty"`
	Senders   int       `json:"senders,omitempty"`
	Rate      float64   `json:"rate,omitempty"`
	DurationS float64   `json:"duration_s"`
	BodySize  int       `json:"body_size"`
	// Interrupted is true when the run was cancelled or hit --timeout.
	Interrupted bool `json:"interrupted,omitempty"`

	Setup   SetupStats    `json:"setup"`
	Connect ConnectReport `json:"connect"`
	Hold    HoldReport    `json:"hold"`

	Messages   MessageReport    `json:"messages"`
	AckLatency LatencySummary   `json:"ack_latency"`
	E2ELatency LatencySummary   `json:"e2e_latency"`
	FramesIn   map[string]int64 `json:"frames_in,omitempty"`

	// Storm is the storm scenario's reconnect and catch-up.
	Storm *StormReport `json:"storm,omitempty"`

	Gateway   GatewayReport   `json:"gateway"`
	Generator GeneratorReport `json:"generator"`
	Warnings  []string        `json:"warnings,omitempty"`

	Raw Result `json:"raw"`
}

// ConnectReport describes the connect phase (dial, upgrade, hello).
type ConnectReport struct {
	Attempted int64            `json:"attempted"`
	OK        int64            `json:"ok"`
	Failed    int64            `json:"failed"`
	Errors    map[string]int64 `json:"errors,omitempty"`
	Seconds   float64          `json:"seconds"`
	PerSec    float64          `json:"per_sec"`
	Latency   LatencySummary   `json:"latency"`
}

// HoldReport tells how many connections survived the run.
type HoldReport struct {
	HeldAtEnd   int64            `json:"held_at_end"`
	Dropped     int64            `json:"dropped"`
	DropReasons map[string]int64 `json:"drop_reasons,omitempty"`
}

// MessageReport counts sends and deliveries.
type MessageReport struct {
	Sent            int64            `json:"sent"`
	Acked           int64            `json:"acked"`
	Errors          map[string]int64 `json:"errors,omitempty"`
	Unacked         int64            `json:"unacked"`
	WriteErrors     int64            `json:"write_errors"`
	Skipped         int64            `json:"skipped"`
	SentPerSec      float64          `json:"sent_per_sec"`
	AckedPerSec     float64          `json:"acked_per_sec"`
	MaxPaceLagMs    float64          `json:"max_pace_lag_ms"`
	Delivered       int64            `json:"delivered"`
	SelfDelivered   int64            `json:"self_delivered"`
	Foreign         int64            `json:"foreign"`
	Expected        int64            `json:"expected"`
	DeliveryRatio   float64          `json:"delivery_ratio"`
	DeliveredPerSec float64          `json:"delivered_per_sec"`
}

// GatewayReport is the gateway's memory (and CPU) as seen from outside.
type GatewayReport struct {
	PID           int     `json:"pid,omitempty"`
	Source        string  `json:"source,omitempty"` // proc or metrics
	RSSBeforeMB   float64 `json:"rss_before_mb,omitempty"`
	RSSAfterMB    float64 `json:"rss_after_mb,omitempty"`
	BytesPerConn  float64 `json:"bytes_per_conn,omitempty"`
	CPUCoresInRun float64 `json:"cpu_cores_in_run,omitempty"`
	Error         string  `json:"error,omitempty"`

	// From the Go runtime's metrics on /metrics, when exported: less
	// disturbed than RSS by memory the runtime has not yet returned.
	GoroutinesBefore  float64 `json:"goroutines_before,omitempty"`
	GoroutinesAfter   float64 `json:"goroutines_after,omitempty"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn,omitempty"`
	HeapStackBeforeMB float64 `json:"heap_stack_inuse_before_mb,omitempty"`
	HeapStackAfterMB  float64 `json:"heap_stack_inuse_after_mb,omitempty"`
	HeapStackPerConn  float64 `json:"heap_stack_bytes_per_conn,omitempty"`
	MetricsError      string  `json:"metrics_error,omitempty"`
}

// GeneratorReport is the generator's own CPU use.
type GeneratorReport struct {
	Processes       []ProcUsage `json:"processes"`
	MaxCores        float64     `json:"max_cores"`
	MaybeBottleneck bool        `json:"maybe_bottleneck"`
}

func perSec(n int64, ns int64) float64 {
	if ns <= 0 {
		return 0
	}
	return round3(float64(n) / (float64(ns) / 1e9))
}

// fill derives the report's sections from the merged result.
func (r *Report) fill(res Result, gw *gatewayProbe) {
	r.Raw = res
	r.Connect = ConnectReport{
		Attempted: res.ConnectAttempted, OK: res.ConnectOK, Failed: res.ConnectFailed, Errors: res.ConnectErrors,
		Seconds: round3(float64(res.ConnectEndNs-res.ConnectStartNs) / 1e9),
		PerSec:  perSec(res.ConnectOK, res.ConnectEndNs-res.ConnectStartNs),
		Latency: res.ConnectLatency.Summary(),
	}
	r.Hold = HoldReport{HeldAtEnd: res.HeldAtEnd, Dropped: res.Dropped, DropReasons: res.DropReasons}
	sendSpan := int64(r.DurationS * 1e9)
	m := MessageReport{
		Sent: res.Sent, Acked: res.Acked, Errors: res.SendErrors, Unacked: res.Unacked,
		WriteErrors: res.WriteErrors, Skipped: res.Skipped,
		MaxPaceLagMs: ms(time.Duration(res.MaxPaceLagNs)),
		Delivered:    res.Delivered, SelfDelivered: res.SelfDelivered, Foreign: res.Foreign, Expected: res.Expected,
	}
	if r.Scenario != "idle" {
		m.SentPerSec = perSec(res.Sent, sendSpan)
		m.AckedPerSec = perSec(res.Acked, sendSpan)
		if res.LastDelivNs > res.FirstDelivNs {
			m.DeliveredPerSec = perSec(res.Delivered, res.LastDelivNs-res.FirstDelivNs)
		}
		if res.Expected > 0 {
			m.DeliveryRatio = round3(float64(res.Delivered) / float64(res.Expected))
		}
	}
	r.Messages = m
	r.AckLatency = res.AckLatency.Summary()
	r.E2ELatency = res.E2ELatency.Summary()
	r.FramesIn = res.FramesIn
	if s := res.Storm; s != nil {
		r.Storm = &StormReport{Dropped: s.Dropped, Reconnected: s.Reconnected, CaughtUp: s.CaughtUp, Failed: s.Failed,
			Reconnect: s.Reconnect.Summary(), CatchUp: s.CatchUp.Summary()}
		if s.LastNs > s.StartNs {
			r.Storm.AllCaughtUpS = round3(float64(s.LastNs-s.StartNs) / 1e9)
		}
	}

	if gw != nil {
		r.Gateway = gw.report
	}
	r.Generator.Processes = res.Processes
	for _, p := range res.Processes {
		// Only phases long enough to judge; the parent's set-up waits on
		// the server's password hashing and is shown but not judged.
		if p.WallS >= 0.5 && p.Phase != "setup" && p.Cores > r.Generator.MaxCores {
			r.Generator.MaxCores = p.Cores
		}
	}
	if r.Generator.MaxCores > BottleneckCores {
		r.Generator.MaybeBottleneck = true
		r.Warnings = append(r.Warnings, fmt.Sprintf(
			"a generator process used %.2f cores (> %.2f): the generator may be the bottleneck; use --procs or fewer connections/rate",
			r.Generator.MaxCores, BottleneckCores))
	}
	if res.ConnectFailed > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d of %d connections failed", res.ConnectFailed, res.ConnectAttempted))
	}
	if res.Dropped > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d connections were closed by the server or the network during the run", res.Dropped))
	}
	if r.Scenario != "idle" && m.Expected > 0 && m.DeliveryRatio < 0.999 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("only %.1f%% of expected deliveries arrived", 100*m.DeliveryRatio))
	}
	if r.Scenario != "idle" && r.Senders > 0 && r.Rate/float64(r.Senders) > gatewaySendRate {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%.1f msg/s per sender exceeds the gateway's default per-connection limit (%.0f/s): expect rate_limited; raise --senders",
			r.Rate/float64(r.Senders), gatewaySendRate))
	}
	if gw != nil && r.Gateway.Source != "" && r.Gateway.BytesPerConn <= 0 && res.ConnectOK > 0 {
		r.Warnings = append(r.Warnings, "the gateway's RSS did not grow while connecting (garbage collection returned memory): bytes per connection is not meaningful at this size; measure with more connections")
	}
	if res.Unacked > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d sends got neither ack nor error by the end of the run", res.Unacked))
	}
	if n := sumCounts(res.SendErrors); n > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d error frames: %s", n, sortedCounts(res.SendErrors)))
	}
	if res.Skipped > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d sends skipped: a connection had too many unacked sends", res.Skipped))
	}
	if res.MaxPaceLagNs > int64(100*time.Millisecond) {
		r.Warnings = append(r.Warnings, fmt.Sprintf("senders fell up to %v behind schedule: the generator did not get the CPU in time (busy machine, or the generator is saturated)", time.Duration(res.MaxPaceLagNs).Round(time.Millisecond)))
	}
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func sumCounts(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

func sortedCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func latLine(l LatencySummary) string {
	if l.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  (mean %.2fms, n=%d)", l.P50Ms, l.P90Ms, l.P99Ms, l.MaxMs, l.MeanMs, l.Count)
}

// WriteSummary prints the human summary.
func (r *Report) WriteSummary(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("chatload %s against %s (%d conns, %d procs, %gs)", r.Scenario, r.URL, r.Conns, r.Procs, r.DurationS)
	p("  setup:     %d users reused, %d signed up in %.1fs (%.1f/s), %d failed; %d groups (%d failed) in %.1fs",
		r.Setup.Reused, r.Setup.SignupOK, r.Setup.SignupSeconds, r.Setup.SignupPerSec, r.Setup.SignupFailed, r.Setup.Groups, r.Setup.GroupFailed, r.Setup.GroupSeconds)
	if len(r.Setup.Errors) > 0 {
		p("             errors: %s", sortedCounts(r.Setup.Errors))
	}
	p("  connect:   %d/%d ok, %d failed in %.2fs = %.0f conn/s; dial-to-hello %s",
		r.Connect.OK, r.Connect.Attempted, r.Connect.Failed, r.Connect.Seconds, r.Connect.PerSec, latLine(r.Connect.Latency))
	if len(r.Connect.Errors) > 0 {
		p("             errors: %s", sortedCounts(r.Connect.Errors))
	}
	p("  hold:      %d held at the end, %d dropped (%s)", r.Hold.HeldAtEnd, r.Hold.Dropped, sortedCounts(r.Hold.DropReasons))
	if r.Scenario != "idle" {
		m := r.Messages
		p("  send:      %d sent (%.0f/s), %d acked, %d unacked, %d skipped, %d write errors; max pacing lag %.1fms",
			m.Sent, m.SentPerSec, m.Acked, m.Unacked, m.Skipped, m.WriteErrors, m.MaxPaceLagMs)
		p("             errors by code: %s", sortedCounts(m.Errors))
		p("  ack:       %s", latLine(r.AckLatency))
		p("  deliver:   %d of %d expected (%.1f%%), %.0f msg/s delivered; %d own echoes, %d foreign",
			m.Delivered, m.Expected, 100*m.DeliveryRatio, m.DeliveredPerSec, m.SelfDelivered, m.Foreign)
		p("  end2end:   %s", latLine(r.E2ELatency))
	}
	if s := r.Storm; s != nil {
		p("  storm:     %d dropped, %d reconnected, %d caught up; all caught up %.2fs after the first drop; failures: %s",
			s.Dropped, s.Reconnected, s.CaughtUp, s.AllCaughtUpS, sortedCounts(s.Failed))
		p("             drop-to-hello %s", latLine(s.Reconnect))
		p("             drop-to-catch-up %s", latLine(s.CatchUp))
	}
	p("  frames in: %s", sortedCounts(r.FramesIn))
	g := r.Gateway
	switch {
	case g.Error != "":
		p("  gateway:   memory not measured: %s", g.Error)
	case g.Source != "":
		p("  gateway:   RSS %.1f MB -> %.1f MB = %.0f bytes per connection (%s)", g.RSSBeforeMB, g.RSSAfterMB, g.BytesPerConn, g.Source)
		if g.GoroutinesAfter > 0 {
			p("             Go runtime: heap+stack in use %.1f MB -> %.1f MB = %.0f bytes per connection; goroutines %.0f -> %.0f = %.2f per connection",
				g.HeapStackBeforeMB, g.HeapStackAfterMB, g.HeapStackPerConn, g.GoroutinesBefore, g.GoroutinesAfter, g.GoroutinesPerConn)
		}
		if g.CPUCoresInRun > 0 {
			p("             CPU during the run: %.2f cores", g.CPUCoresInRun)
		}
	}
	var parts []string
	for _, u := range r.Generator.Processes {
		parts = append(parts, fmt.Sprintf("%s/%s %.2f", u.Role, u.Phase, u.Cores))
	}
	p("  generator: cores used per process and phase: %s", strings.Join(parts, ", "))
	for _, wline := range r.Warnings {
		p("  WARNING:   %s", wline)
	}
}

// gatewayProbe measures the gateway's memory before and after connecting,
// from /proc when its PID is known, else from its /metrics.
type gatewayProbe struct {
	pid    int
	api    *API
	base   string
	rss0   uint64
	inuse0 float64
	cpu0   time.Duration
	t0     time.Time
	report GatewayReport
}

func newGatewayProbe(pid int, api *API, base string) *gatewayProbe {
	return &gatewayProbe{pid: pid, api: api, base: base, report: GatewayReport{PID: pid}}
}

func (g *gatewayProbe) rss(ctx context.Context) (uint64, string, error) {
	if g.pid > 0 {
		v, err := ProcRSS(g.pid)
		return v, "proc", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := MetricsRSS(ctx, g.api.HTTPClient(), g.base)
	return v, "metrics", err
}

// runtimeStats returns goroutines and heap+stack bytes in use.
func (g *gatewayProbe) runtimeStats(ctx context.Context) (gor, inuse float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := FetchMetrics(ctx, g.api.HTTPClient(), g.base)
	if err != nil {
		return 0, 0, err
	}
	gor, ok1 := m["go_goroutines"]
	heap, ok2 := m["go_memstats_heap_inuse_bytes"]
	stack, ok3 := m["go_memstats_stack_inuse_bytes"]
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, errors.New("go_goroutines or go_memstats_* not exported")
	}
	return gor, heap + stack, nil
}

func (g *gatewayProbe) before(ctx context.Context) {
	if gor, inuse, err := g.runtimeStats(ctx); err != nil {
		g.report.MetricsError = err.Error()
	} else {
		g.report.GoroutinesBefore, g.report.HeapStackBeforeMB = gor, round3(inuse/(1<<20))
		g.inuse0 = inuse
	}
	v, src, err := g.rss(ctx)
	if err != nil {
		g.report.Error = err.Error()
		return
	}
	g.rss0 = v
	g.report.Source = src
	g.report.RSSBeforeMB = round3(float64(v) / (1 << 20))
}

func (g *gatewayProbe) after(ctx context.Context, conns int64) {
	if g.report.MetricsError == "" {
		if gor, inuse, err := g.runtimeStats(ctx); err != nil {
			g.report.MetricsError = err.Error()
		} else if conns > 0 {
			g.report.GoroutinesAfter, g.report.HeapStackAfterMB = gor, round3(inuse/(1<<20))
			g.report.GoroutinesPerConn = round3((gor - g.report.GoroutinesBefore) / float64(conns))
			g.report.HeapStackPerConn = round3((inuse - g.inuse0) / float64(conns))
		}
	}
	if g.report.Error != "" {
		return
	}
	v, _, err := g.rss(ctx)
	if err != nil {
		g.report.Error = err.Error()
		return
	}
	g.report.RSSAfterMB = round3(float64(v) / (1 << 20))
	if conns > 0 {
		g.report.BytesPerConn = round3((float64(v) - float64(g.rss0)) / float64(conns))
	}
}

func (g *gatewayProbe) runStart() {
	if g.pid > 0 {
		g.cpu0, _ = ProcCPU(g.pid)
		g.t0 = time.Now()
	}
}

func (g *gatewayProbe) runEnd() {
	if g.pid > 0 && !g.t0.IsZero() {
		if c, err := ProcCPU(g.pid); err == nil {
			g.report.CPUCoresInRun = round3((c - g.cpu0).Seconds() / time.Since(g.t0).Seconds())
		}
		g.t0 = time.Time{}
	}
}
