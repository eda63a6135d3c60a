package main

// An operations test with a real Prometheus (Debian's prometheus package):
// it scrapes chat dev on loopback, loads the alert rules from k8s/, and the
// test checks through Prometheus' HTTP API that every series the Grafana
// dashboard and the alerts use exists, that every dashboard expression is
// accepted, and that a healthy system fires no alert.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
)

const (
	// The labels a Prometheus Operator ServiceMonitor gives a gateway's
	// series (k8s/components/monitoring/servicemonitor.yaml: job is the
	// Service name), so the dashboard's selectors match what is scraped.
	promNamespace = "chat-ops-test"
	promPod       = "chat-dev-0"
	promJob       = "chat-gateway"
	// promRateInterval is what Grafana makes of $__rate_interval with the
	// ServiceMonitor's 15s scrape interval: max(4 x 15s, $__interval + 15s).
	promRateInterval = "1m"
	promWait         = 60 * time.Second
	promMessages     = 5
)

var errPromRejected = errors.New("prometheus answered status error")

func TestPrometheusScrapesDashboardSeries(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus and chat dev")
	}
	bin := promBinary()
	if bin == "" {
		t.Skip("install Debian's prometheus package (test.sh does)")
	}

	dash := promDashboard(t, "../../k8s/dashboards/chat.json")
	rulesYAML, ruleCount := promRuleGroups(t, "../../k8s")

	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d, err := startDev(ctx, devOptions{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Data: t.TempDir(), JWTSecret: "prometheus-test-secret-0123456789abcdef", Drain: time.Second}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer ccancel()
		if err := d.Close(cctx); err != nil {
			t.Errorf("dev close: %v", err)
		}
	})
	// Prometheus scrapes the metrics address, as in the cluster: the
	// public port has no /metrics.
	metricsURL, err := url.Parse(d.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}

	p := startPrometheus(t, bin, hc, metricsURL.Host, rulesYAML)

	// A sample from before the traffic, so that rate() over the window
	// sees the counters and histograms grow.
	promPoll(t, "chat dev scraped (up == 1)", func(ctx context.Context) error {
		return p.atLeast(ctx, fmt.Sprintf(`up{job=%q,namespace=%q}`, promJob, promNamespace), 1)
	})

	promTraffic(t, hc, d.URL)

	// Wait until a scrape after the traffic is stored.
	for expr, min := range map[string]float64{
		fmt.Sprintf(`sum(chat_gateway_frames_in_total{namespace=%q,type="send"})`, promNamespace):                  promMessages,
		fmt.Sprintf(`sum(chat_gateway_ack_latency_seconds_count{namespace=%q})`, promNamespace):                    promMessages,
		fmt.Sprintf(`sum(chat_store_messages_written_total{namespace=%q})`, promNamespace):                         promMessages,
		fmt.Sprintf(`sum(chat_gateway_auth_failures_total{namespace=%q,kind="login"})`, promNamespace):             1,
		fmt.Sprintf(`sum(chat_gateway_upgrade_failures_total{namespace=%q,reason="unauthorized"})`, promNamespace): 1,
		fmt.Sprintf(`sum(chat_gateway_disconnects_total{namespace=%q,reason="client_close"})`, promNamespace):      1,
	} {
		promPoll(t, expr+" >= "+strconv.FormatFloat(min, 'g', -1, 64), func(ctx context.Context) error {
			return p.atLeast(ctx, expr, min)
		})
	}

	// The rules as Prometheus loaded them: it parsed the YAML and the
	// PromQL, so their queries are the authority on what the alerts use.
	var rules []promRule
	promPoll(t, "every rule evaluated", func(ctx context.Context) error {
		var err error
		rules, err = p.rules(ctx)
		if err != nil {
			return err
		}
		if len(rules) != ruleCount {
			return fmt.Errorf("prometheus loaded %d rules, the PrometheusRule has %d", len(rules), ruleCount)
		}
		for _, r := range rules {
			if r.Health != "ok" {
				return fmt.Errorf("rule %s: health %q, last error %q", r.Name, r.Health, r.LastError)
			}
		}
		return nil
	})

	// Every series the dashboard and the alerts name must exist.
	used := map[string][]string{} // metric -> where it is used
	for _, e := range dash.exprs {
		for _, m := range promMetricNames(e.expr) {
			used[m] = append(used[m], "dashboard "+e.where)
		}
	}
	for _, v := range dash.vars {
		used[v.metric] = append(used[v.metric], "dashboard variable $"+v.name)
	}
	for _, r := range rules {
		for _, m := range promMetricNames(r.Query) {
			used[m] = append(used[m], "alert "+r.Name)
		}
	}
	names := make([]string, 0, len(used))
	for m := range used {
		names = append(names, m)
	}
	sort.Strings(names)
	if len(names) < 10 {
		t.Fatalf("found only %d metric names in the dashboard and rules (%v): extraction out of date?", len(names), names)
	}
	deadline := time.Now().Add(promWait)
	for _, m := range names {
		n, err := promSeriesCount(p, m, deadline)
		if err != nil {
			t.Errorf("%s (used by %s): %v", m, strings.Join(promUniq(used[m]), ", "), err)
			continue
		}
		t.Logf("series %s: %d", m, n)
	}

	// Grafana variables: label_values(metric, label) must offer our namespace.
	for _, v := range dash.vars {
		var values []string
		err := p.get(ctx, "/api/v1/label/"+url.PathEscape(v.label)+"/values", url.Values{"match[]": {v.metric}}, &values)
		switch {
		case err != nil:
			t.Errorf("variable $%s: %v", v.name, err)
		case v.label == "namespace" && !promContains(values, promNamespace):
			t.Errorf("variable $%s = label_values(%s, %s) offers %v, not %q", v.name, v.metric, v.label, values, promNamespace)
		case len(values) == 0:
			t.Errorf("variable $%s = label_values(%s, %s) offers nothing", v.name, v.metric, v.label)
		}
	}

	// Every dashboard expression, with Grafana's variables filled in, is
	// valid PromQL for Prometheus and selects the scraped series.
	vars := map[string]string{
		"__rate_interval": promRateInterval,
		"__interval":      "15s",
		"__range":         "1h",
		"namespace":       promNamespace,
		"pod":             promPod,
		"job":             promJob,
	}
	for _, e := range dash.exprs {
		q, err := promSubstitute(e.expr, vars)
		if err != nil {
			t.Errorf("dashboard %s: %v in %s", e.where, err, e.expr)
			continue
		}
		qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := p.query(qctx, q)
		qcancel()
		switch {
		case err != nil:
			t.Errorf("dashboard %s: %s: %v", e.where, q, err)
		case len(res) == 0:
			t.Errorf("dashboard %s: %s selects nothing from chat dev's series", e.where, q)
		default:
			t.Logf("dashboard %s: %s = %s", e.where, q, promValues(res))
		}
	}

	// The rules' queries run through the query API too, and a healthy
	// system settles with no alert pending or firing. Latency alerts are
	// only reported: a loaded test machine may be slow, not broken.
	for _, r := range rules {
		qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := p.query(qctx, r.Query)
		qcancel()
		if err != nil {
			t.Errorf("rule %s: %v", r.Name, err)
		} else {
			t.Logf("rule %s: %d series now", r.Name, len(res))
		}
	}
	latency := map[string]bool{}
	for _, r := range rules {
		if strings.Contains(r.Query, "histogram_quantile") {
			latency[r.Name] = true
		}
	}
	var slow []string
	err = promPollErr(20*time.Second, func(ctx context.Context) error {
		alerts, err := p.alerts(ctx)
		if err != nil {
			return err
		}
		var active []string
		slow = slow[:0]
		for _, a := range alerts {
			desc := fmt.Sprintf("%s %s (value %s)", a.Labels["alertname"], a.State, a.Value)
			if latency[a.Labels["alertname"]] {
				slow = append(slow, desc)
			} else {
				active = append(active, desc)
			}
		}
		if len(active) > 0 {
			return fmt.Errorf("alerts active on a healthy system: %s", strings.Join(active, "; "))
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if len(slow) > 0 {
		t.Logf("latency alerts active (not a failure): %s", strings.Join(slow, "; "))
	}
}

// promBinary is the prometheus executable, or "" when there is none.
func promBinary() string {
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus"
	}
	return ""
}

type promExpr struct{ where, expr string }

// promVar is a Grafana query variable of the form label_values(metric, label).
type promVar struct{ name, metric, label string }

type promDash struct {
	exprs []promExpr
	vars  []promVar
}

// promDashboard reads every PromQL expression of a Grafana dashboard: any
// "expr" of a panel's targets, rows' nested panels included, and the
// dashboard's annotations.
func promDashboard(t *testing.T, path string) promDash {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var d promDash
	var walk func(v any, where string)
	walk = func(v any, where string) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok {
				where = strconv.Quote(title)
			}
			if e, ok := v["expr"].(string); ok && strings.TrimSpace(e) != "" {
				ref, _ := v["refId"].(string)
				d.exprs = append(d.exprs, promExpr{strings.TrimSpace(where + " " + ref), e})
			}
			for k, c := range v {
				if k != "templating" {
					walk(c, where)
				}
			}
		case []any:
			for _, c := range v {
				walk(c, where)
			}
		}
	}
	walk(root, "")
	sort.Slice(d.exprs, func(i, j int) bool { return d.exprs[i].where < d.exprs[j].where })
	if len(d.exprs) < 10 {
		t.Fatalf("%s: found only %d expressions: dashboard layout changed?", path, len(d.exprs))
	}

	labelValues := regexp.MustCompile(`^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)
	tmpl, _ := root["templating"].(map[string]any)
	list, _ := tmpl["list"].([]any)
	for _, item := range list {
		v, _ := item.(map[string]any)
		if v["type"] != "query" {
			continue
		}
		name, _ := v["name"].(string)
		q, _ := v["query"].(string)
		if m, ok := v["query"].(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("dashboard variable $%s: query %q is not label_values(metric, label), which this test understands", name, q)
			continue
		}
		d.vars = append(d.vars, promVar{name, m[1], m[2]})
	}
	return d
}

// promRuleGroups finds the PrometheusRule under dir and returns its spec
// as a Prometheus rule file (a PrometheusRule's spec is one: groups:) and
// the number of rules in it.
func promRuleGroups(t *testing.T, dir string) (string, int) {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
			if regexp.MustCompile(`(?m)^kind:\s*PrometheusRule\s*$`).MatchString(doc) {
				found = append(found, promSpec(t, path, doc))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 {
		t.Fatalf("found %d PrometheusRules under %s, want 1", len(found), dir)
	}
	n := len(regexp.MustCompile(`(?m)^\s*-?\s*(alert|record):`).FindAllString(found[0], -1))
	if n < 3 {
		t.Fatalf("the PrometheusRule holds only %d rules: layout changed?\n%s", n, found[0])
	}
	return found[0], n
}

// promSpec returns the block under a YAML document's top-level spec:, its
// indentation removed.
func promSpec(t *testing.T, path, doc string) string {
	t.Helper()
	lines := strings.Split(doc, "\n")
	start := -1
	for i, l := range lines {
		if strings.TrimRight(l, " \t\r") == "spec:" {
			start = i + 1
			break
		}
	}
	if start < 0 {
		t.Fatalf("%s: PrometheusRule without a top-level spec:", path)
	}
	indent := ""
	var out []string
	for _, l := range lines[start:] {
		if strings.TrimSpace(l) == "" {
			out = append(out, "")
			continue
		}
		if indent == "" {
			indent = l[:len(l)-len(strings.TrimLeft(l, " "))]
			if indent == "" {
				break // an empty spec
			}
		}
		if !strings.HasPrefix(l, indent) {
			break // the next top-level key
		}
		out = append(out, strings.TrimPrefix(l, indent))
	}
	spec := strings.Join(out, "\n")
	if !regexp.MustCompile(`(?m)^groups:`).MatchString(spec) {
		t.Fatalf("%s: the PrometheusRule's spec has no groups:\n%s", path, spec)
	}
	return spec
}

var (
	promStringRE = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promNameRE   = regexp.MustCompile(`\b(?:(?:chat|go|process)_[a-zA-Z0-9_]+|up)\b`)
	promVarRE    = regexp.MustCompile(`\$\{([a-zA-Z0-9_]+)(?::[a-zA-Z0-9_]+)?\}|\$([a-zA-Z0-9_]+)|\[\[([a-zA-Z0-9_]+)\]\]`)
)

// promMetricNames are the chat_, go_ and process_ metrics (and up) an
// expression selects. String literals are left out, so a label value such
// as job="chat-gateway" or a regexp is never taken for a metric.
func promMetricNames(expr string) []string {
	return promUniq(promNameRE.FindAllString(promStringRE.ReplaceAllString(expr, `""`), -1))
}

// promSubstitute fills in Grafana's variables ($x, ${x}, ${x:fmt}, [[x]]).
func promSubstitute(expr string, vars map[string]string) (string, error) {
	var unknown []string
	out := promVarRE.ReplaceAllStringFunc(expr, func(s string) string {
		m := promVarRE.FindStringSubmatch(s)
		name := m[1] + m[2] + m[3]
		v, ok := vars[name]
		if !ok {
			unknown = append(unknown, s)
			return s
		}
		return v
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown Grafana variables %v", unknown)
	}
	return out, nil
}

func promUniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func promContains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// promTraffic signs up two users, fails a login and an upgrade, and sends
// messages over a WebSocket that the other user receives, so every
// histogram has samples and the failure counters move.
func promTraffic(t *testing.T, hc *http.Client, base string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), promWait)
	defer cancel()
	suffix := strconv.FormatInt(time.Now().UnixNano()%1_000_000_000, 36)
	type acct struct {
		User struct {
			ID       string `json:"id"`
			Username string `json:"username"`
		} `json:"user"`
		Token string `json:"token"`
	}
	var alice, bob acct
	for _, u := range []struct {
		name string
		out  *acct
	}{{"alice" + suffix, &alice}, {"bob" + suffix, &bob}} {
		if code := promHTTP(ctx, t, hc, "POST", base+"api/v1/signup", "", map[string]string{"username": u.name, "password": "prometheus test password", "display_name": u.name}, u.out); code != http.StatusCreated {
			t.Fatalf("signup %s: HTTP %d", u.name, code)
		}
	}
	if code := promHTTP(ctx, t, hc, "POST", base+"api/v1/login", "", map[string]string{"username": alice.User.Username, "password": "wrong password"}, nil); code != http.StatusUnauthorized {
		t.Fatalf("login with a wrong password: HTTP %d, want 401", code)
	}
	var conv struct {
		ID string `json:"id"`
	}
	if code := promHTTP(ctx, t, hc, "POST", base+"api/v1/conversations/direct", alice.Token, map[string]string{"username": bob.User.Username}, &conv); code != http.StatusOK || conv.ID == "" {
		t.Fatalf("direct conversation: HTTP %d, id %q", code, conv.ID)
	}

	ws := "ws" + strings.TrimPrefix(base, "http") + "ws"
	if c, resp, err := websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPClient: hc}); err == nil {
		c.CloseNow()
		t.Fatal("a WebSocket without a token was accepted")
	} else if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("WebSocket without a token: %v (%v), want HTTP 401", err, resp)
	}
	dial := func(token string) *websocket.Conn {
		c, _, err := websocket.Dial(ctx, ws+"?token="+url.QueryEscape(token), &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { c.CloseNow() })
		if f := promRead(ctx, t, c, func(promFrame) bool { return true }); f.Type != "hello" {
			t.Fatalf("first frame %q, want hello", f.Type)
		}
		return c
	}
	bc := dial(bob.Token)
	ac := dial(alice.Token)

	for i := range promMessages {
		id := fmt.Sprintf("send-%d", i)
		promWrite(ctx, t, ac, map[string]string{"type": "send", "id": id, "conversation": conv.ID, "client_id": "prom-" + suffix + "-" + strconv.Itoa(i), "body": fmt.Sprintf("message %d", i)})
		if f := promRead(ctx, t, ac, func(f promFrame) bool { return f.ID == id }); f.Type != "ack" {
			t.Fatalf("send %s: %s", id, f.raw)
		}
	}
	promWrite(ctx, t, ac, map[string]string{"type": "ping", "id": "ping-1"})
	promRead(ctx, t, ac, func(f promFrame) bool { return f.Type == "pong" })
	for range promMessages {
		promRead(ctx, t, bc, func(f promFrame) bool { return f.Type == "message" && f.Message.Conversation == conv.ID })
	}
	if code := promHTTP(ctx, t, hc, "GET", base+"api/v1/conversations/"+conv.ID+"/messages", bob.Token, nil, nil); code != http.StatusOK {
		t.Fatalf("history: HTTP %d", code)
	}
	if err := ac.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("close: %v", err)
	}
}

type promFrame struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Message struct {
		Conversation string `json:"conversation"`
	} `json:"message"`
	raw []byte
}

func promWrite(ctx context.Context, t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// promRead reads frames until one matches.
func promRead(ctx context.Context, t *testing.T, c *websocket.Conn, match func(promFrame) bool) promFrame {
	t.Helper()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var f promFrame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		f.raw = b
		if match(f) {
			return f
		}
	}
}

func promHTTP(ctx context.Context, t *testing.T, hc *http.Client, method, u, token string, body, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, u, err, b)
		}
	}
	return resp.StatusCode
}

// promServer is a Prometheus child process and a client of its HTTP API.
type promServer struct {
	base string
	hc   *http.Client
}

// startPrometheus runs prometheus scraping target every second with the
// rule groups loaded, and returns once it is ready. It is stopped at the
// end of the test.
func startPrometheus(t *testing.T, bin string, hc *http.Client, target, rules string) *promServer {
	t.Helper()
	dir := t.TempDir()
	rulePath := filepath.Join(dir, "chat-rules.yml")
	if err := os.WriteFile(rulePath, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: %q
    metrics_path: /metrics
    static_configs:
      - targets: [%q]
        labels:
          namespace: %q
          pod: %q
`, rulePath, promJob, target, promNamespace, promPod)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// A port found free can be taken before prometheus binds it; then
	// prometheus exits at once and another port is tried.
	for attempt := 1; ; attempt++ {
		port := promFreePort(t)
		logPath := filepath.Join(dir, fmt.Sprintf("prometheus-%d.log", attempt))
		p, exitErr := promRun(t, bin, hc, dir, cfgPath, logPath, port)
		if p != nil {
			return p
		}
		log, _ := os.ReadFile(logPath)
		if attempt < 3 && strings.Contains(string(log), "address already in use") {
			continue
		}
		t.Fatalf("prometheus did not become ready (its log follows): %v", exitErr)
	}
}

// promRun starts one prometheus and waits for /-/ready. It returns nil and
// why when the process exits or is not ready in time.
func promRun(t *testing.T, bin string, hc *http.Client, dir, cfgPath, logPath string, port int) (*promServer, error) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=info",
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		select {
		case <-exited:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("prometheus log:\n%s", promTail(log, 40))
		}
	})

	p := &promServer{base: "http://" + addr, hc: hc}
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	deadline := time.After(promWait)
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("prometheus exited: %v", waitErr)
		case <-deadline:
			stop()
			return nil, fmt.Errorf("not ready in %v", promWait)
		case <-ticker.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, err := http.NewRequestWithContext(ctx, "GET", p.base+"/-/ready", nil)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				cancel()
				return p, nil
			}
		}
		cancel()
	}
}

// promFreePort is a loopback port that was free a moment ago.
func promFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func promTail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// get calls Prometheus' HTTP API and decodes data into out.
func (p *promServer) get(ctx context.Context, path string, q url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", p.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, b)
	}
	if env.Status != "success" {
		return fmt.Errorf("%w: %s: %s", errPromRejected, env.ErrorType, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) float() (float64, error) {
	v, ok := s.Value[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", s.Value[1])
	}
	return strconv.ParseFloat(v, 64)
}

// query is an instant query; a scalar answer is one sample without labels.
func (p *promServer) query(ctx context.Context, expr string) ([]promSample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var out []promSample
		err := json.Unmarshal(data.Result, &out)
		return out, err
	case "scalar", "string":
		var s promSample
		err := json.Unmarshal(data.Result, &s.Value)
		return []promSample{s}, err
	default:
		return nil, fmt.Errorf("result type %q from an instant query", data.ResultType)
	}
}

// atLeast succeeds once expr has a sample of at least min.
func (p *promServer) atLeast(ctx context.Context, expr string, min float64) error {
	res, err := p.query(ctx, expr)
	if err != nil {
		return err
	}
	for _, s := range res {
		if v, err := s.float(); err == nil && v >= min {
			return nil
		}
	}
	return fmt.Errorf("%s = %s", expr, promValues(res))
}

func promValues(res []promSample) string {
	var parts []string
	for _, s := range res {
		v, err := s.float()
		str := fmt.Sprint(s.Value[1])
		if err == nil && !math.IsNaN(v) {
			str = strconv.FormatFloat(v, 'g', 4, 64)
		}
		var ls []string
		for k, l := range s.Metric {
			if k != "namespace" && k != "pod" && k != "job" && k != "instance" {
				ls = append(ls, k+"="+l)
			}
		}
		sort.Strings(ls)
		if len(ls) > 0 {
			str = "{" + strings.Join(ls, ",") + "} " + str
		}
		parts = append(parts, str)
	}
	if len(parts) == 0 {
		return "(empty)"
	}
	if len(parts) > 6 {
		parts = append(parts[:6], fmt.Sprintf("... %d more", len(parts)-6))
	}
	return strings.Join(parts, ", ")
}

// promSeriesCount polls /api/v1/series until name has series or deadline.
func promSeriesCount(p *promServer, name string, deadline time.Time) (int, error) {
	var n int
	err := promPollErr(time.Until(deadline), func(ctx context.Context) error {
		var series []map[string]string
		if err := p.get(ctx, "/api/v1/series", url.Values{"match[]": {fmt.Sprintf(`{__name__=%q}`, name)}}, &series); err != nil {
			return err
		}
		n = len(series)
		if n == 0 {
			return fmt.Errorf("no series in prometheus")
		}
		return nil
	})
	return n, err
}

type promRule struct {
	Name      string `json:"name"`
	Query     string `json:"query"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
	Type      string `json:"type"`
}

func (p *promServer) rules(ctx context.Context) ([]promRule, error) {
	var data struct {
		Groups []struct {
			Rules []promRule `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get(ctx, "/api/v1/rules", nil, &data); err != nil {
		return nil, err
	}
	var out []promRule
	for _, g := range data.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
	Value  string            `json:"value"`
}

func (p *promServer) alerts(ctx context.Context) ([]promAlert, error) {
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	err := p.get(ctx, "/api/v1/alerts", nil, &data)
	return data.Alerts, err
}

// promPoll calls check until it succeeds, failing the test after promWait.
func promPoll(t *testing.T, what string, check func(context.Context) error) {
	t.Helper()
	if err := promPollErr(promWait, check); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// promPollErr calls check every 250ms until it succeeds or d has passed,
// and returns the last error.
func promPollErr(d time.Duration, check func(context.Context) error) error {
	deadline := time.Now().Add(d)
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := check(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		<-ticker.C
	}
}
