package k8s

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// query is one PromQL expression and where it was found.
type query struct {
	where string
	expr  string
}

// grafanaBuiltins are Grafana's interval variables, replaced by a duration
// before parsing.
var grafanaBuiltins = []string{"__rate_interval", "__interval", "__range"}

var grafanaVar = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

var labelValuesQuery = regexp.MustCompile(`^label_values\(\s*([^,]+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$`)

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func loadDashboard(t *testing.T) (*dashboard, []byte) {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return &d, raw
}

func flattenPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flattenPanels(p.Panels)...)
	}
	return out
}

// dashboardQueries returns the dashboard's PromQL with Grafana's variables
// replaced, and the metric/label pairs of its label_values() variables.
func dashboardQueries(d *dashboard) ([]query, []query, error) {
	vars := map[string]bool{}
	for _, b := range grafanaBuiltins {
		vars[b] = true
	}
	var labelQueries []query
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			// Older dashboards store the query as a plain string.
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				return nil, nil, fmt.Errorf("variable %s: query: %w", v.Name, err)
			}
		}
		m := labelValuesQuery.FindStringSubmatch(q.Query)
		if m == nil {
			return nil, nil, fmt.Errorf("variable %s: %q is not label_values(metric, label)", v.Name, q.Query)
		}
		labelQueries = append(labelQueries, query{"variable " + v.Name + " label " + m[2], m[1]})
	}
	var qs []query
	for _, p := range flattenPanels(d.Panels) {
		for _, tg := range p.Targets {
			where := fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID)
			for _, m := range grafanaVar.FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[m[1]] {
					return nil, nil, fmt.Errorf("%s: unknown variable $%s", where, m[1])
				}
			}
			e := tg.Expr
			for _, b := range grafanaBuiltins {
				e = strings.ReplaceAll(e, "${"+b+"}", "5m")
				e = strings.ReplaceAll(e, "$"+b, "5m")
			}
			qs = append(qs, query{where, e})
		}
	}
	return qs, labelQueries, nil
}

// ruleQueries returns the alert rules' expressions from the built prod
// overlay, as Prometheus would load them.
func ruleQueries(t *testing.T) ([]query, *cluster) {
	t.Helper()
	c, err := loadCluster("prod")
	if err != nil {
		t.Fatal(err)
	}
	var qs []query
	for _, r := range c.rules {
		for _, g := range r.Spec.Groups {
			for _, rule := range g.Rules {
				qs = append(qs, query{"rule " + g.Name + "/" + rule.Alert + rule.Record, rule.Expr.String()})
			}
		}
	}
	return qs, c
}

// baseMetric maps a series name to the metric that produces it (a classic
// histogram's _bucket, _sum and _count series belong to the histogram).
func baseMetric(name string) (string, metricInfo, bool) {
	if info, ok := knownMetrics[name]; ok {
		return name, info, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if info, ok := knownMetrics[base]; ok && info.kind == histogram {
				return base, info, true
			}
		}
	}
	return "", metricInfo{}, false
}

// allowedOther is true for series the chat code does not define but every
// scrape has: up, and the Go and process collectors.
func allowedOther(name string) bool {
	return name == "up" || strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_")
}

func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// labelAllowed says whether series of this name can carry label l.
func labelAllowed(name, l string) bool {
	if targetLabels[l] {
		return true
	}
	if allowedOther(name) {
		return l == "quantile" || l == "version"
	}
	_, info, ok := baseMetric(name)
	if !ok {
		return false
	}
	if l == "le" {
		return strings.HasSuffix(name, "_bucket")
	}
	_, ok = info.labels[l]
	return ok
}

func selectorsIn(n parser.Node) []*parser.VectorSelector {
	var vss []*parser.VectorSelector
	parser.Inspect(n, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			vss = append(vss, vs)
		}
		return nil
	})
	return vss
}

// checkQuery parses one expression and checks every metric, label and
// function use against the contract.
func checkQuery(p parser.Parser, q query) []error {
	expr, err := p.ParseExpr(q.expr)
	if err != nil {
		return []error{fmt.Errorf("%s: %q: %w", q.where, q.expr, err)}
	}
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", q.where, fmt.Sprintf(format, args...)))
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch v := n.(type) {
		case *parser.VectorSelector:
			name := selectorName(v)
			if name == "" {
				fail("selector %s names no metric", v)
				return nil
			}
			base, info, known := baseMetric(name)
			if !known && !allowedOther(name) {
				fail("metric %s is not in CONTRACT.md (knownMetrics)", name)
				return nil
			}
			if known && info.kind == histogram && base == name {
				fail("histogram %s has no series of that name; use _bucket, _sum or _count", name)
			}
			for _, m := range v.LabelMatchers {
				if m.Name == labels.MetricName {
					continue
				}
				if !labelAllowed(name, m.Name) {
					fail("%s has no label %s", name, m.Name)
					continue
				}
				values := info.labels[m.Name]
				if known && values != nil && m.Type == labels.MatchEqual && !slices.Contains(values, m.Value) {
					fail("%s{%s=%q}: value not in %v", name, m.Name, m.Value, values)
				}
			}
		case *parser.AggregateExpr:
			for _, l := range v.Grouping {
				for _, vs := range selectorsIn(v.Expr) {
					if name := selectorName(vs); !labelAllowed(name, l) {
						fail("%s groups by %s, which %s does not have", v.Op, l, name)
					}
				}
			}
		case *parser.Call:
			switch v.Func.Name {
			case "rate", "irate", "increase":
				for _, vs := range selectorsIn(v) {
					name := selectorName(vs)
					_, info, known := baseMetric(name)
					counterLike := strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_bucket") ||
						strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count")
					if !counterLike || (known && info.kind == gauge) {
						fail("%s of %s, which is not a counter", v.Func.Name, name)
					}
				}
			case "deriv", "delta":
				for _, vs := range selectorsIn(v) {
					if _, info, known := baseMetric(selectorName(vs)); known && info.kind != gauge {
						fail("%s of %s, which is not a gauge", v.Func.Name, selectorName(vs))
					}
				}
			case "histogram_quantile":
				groupsLe := false
				parser.Inspect(v.Args[1], func(n parser.Node, _ []parser.Node) error {
					if a, ok := n.(*parser.AggregateExpr); ok && !a.Without && slices.Contains(a.Grouping, "le") {
						groupsLe = true
					}
					return nil
				})
				if !groupsLe {
					fail("histogram_quantile over an aggregation that drops le")
				}
				for _, vs := range selectorsIn(v.Args[1]) {
					if !strings.HasSuffix(selectorName(vs), "_bucket") {
						fail("histogram_quantile over %s, not a _bucket series", selectorName(vs))
					}
				}
			}
		}
		return nil
	})
	return errs
}

func TestDashboardPromQL(t *testing.T) {
	d, _ := loadDashboard(t)
	qs, labelQueries, err := dashboardQueries(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 20 {
		t.Fatalf("only %d queries found in %s", len(qs), dashboardFile)
	}
	p := parser.NewParser(parser.Options{})
	for _, q := range qs {
		for _, err := range checkQuery(p, q) {
			t.Error(err)
		}
	}
	for _, lq := range labelQueries {
		for _, err := range checkQuery(p, lq) {
			t.Error(err)
		}
	}
}

func TestDashboardShape(t *testing.T) {
	d, raw := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	// Grafana's sidecar loads dashboards from ConfigMaps, whose total size
	// is capped at 1 MiB, and kubectl apply keeps a copy in an annotation
	// capped at 256 KiB.
	if len(raw) > 200<<10 {
		t.Errorf("dashboard is %d bytes; keep it under 200 KiB", len(raw))
	}
	ids := map[int]bool{}
	for _, p := range flattenPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource must be the ${datasource} variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
	}
	qs, _, err := dashboardQueries(d)
	if err != nil {
		t.Fatal(err)
	}
	all := ""
	for _, q := range qs {
		all += q.expr + "\n"
	}
	// Every metric the code registers is on the dashboard somewhere.
	for _, name := range sortedKeys(knownMetrics) {
		if !regexp.MustCompile(`\b` + name + `(_bucket|_sum|_count)?\{`).MatchString(all) {
			t.Errorf("metric %s is not on the dashboard", name)
		}
	}
	// The issue asks for p50/p95/p99 of each gateway latency.
	for _, h := range []string{"chat_gateway_ack_latency_seconds", "chat_gateway_fanout_latency_seconds", "chat_gateway_nats_publish_latency_seconds"} {
		for _, q := range []string{"0.5", "0.95", "0.99"} {
			if !strings.Contains(all, "histogram_quantile("+q+", sum by (le) (rate("+h+"_bucket") {
				t.Errorf("no p%s of %s", strings.TrimPrefix(q, "0."), h)
			}
		}
	}
	for _, m := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "go_gc_duration_seconds_count"} {
		if !strings.Contains(all, m) {
			t.Errorf("Go runtime metric %s is not on the dashboard", m)
		}
	}
}

// promTemplateFuncs stubs the functions Prometheus offers alert templates,
// so the annotations can be parsed here.
var promTemplateFuncs = template.FuncMap{
	"humanize": fmt.Sprint, "humanize1024": fmt.Sprint, "humanizeDuration": fmt.Sprint,
	"humanizePercentage": fmt.Sprint, "humanizeTimestamp": fmt.Sprint, "printf": fmt.Sprintf,
	"query": fmt.Sprint, "first": fmt.Sprint, "value": fmt.Sprint, "label": fmt.Sprint,
	"title": strings.ToTitle, "toUpper": strings.ToUpper, "toLower": strings.ToLower,
}

// requiredAlerts are the alerts the issue asks for.
var requiredAlerts = []string{
	"ChatNoReadyGateway",     // no ready gateway
	"ChatConsumerLagGrowing", // JetStream consumer lag growing
	"ChatStoreWriteErrors",   // store write errors
	"ChatAckLatencyHigh",     // p99 ack latency above a threshold
	"ChatSlowConsumerStorm",  // slow-consumer storm
}

func TestAlertRules(t *testing.T) {
	qs, c := ruleQueries(t)
	if len(c.rules) != 1 {
		t.Fatalf("%d PrometheusRules in prod, want 1", len(c.rules))
	}
	p := parser.NewParser(parser.Options{})
	for _, q := range qs {
		for _, err := range checkQuery(p, q) {
			t.Error(err)
		}
	}
	seen := map[string]bool{}
	for _, g := range c.rules[0].Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if seen[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if r.For == nil || *r.For == "" {
				t.Errorf("alert %s: no for: one bad scrape would page", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: needs summary and description", r.Alert)
			}
			for k, a := range r.Annotations {
				// Prometheus defines these variables before expanding.
				const header = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
				if _, err := template.New(k).Funcs(promTemplateFuncs).Parse(header + a); err != nil {
					t.Errorf("alert %s annotation %s: %v", r.Alert, k, err)
				}
			}
		}
	}
	for _, a := range requiredAlerts {
		if !seen[a] {
			t.Errorf("alert %s missing", a)
		}
	}
}

// TestQueryChecksCatchMistakes feeds the query checker the mistakes it is
// there for.
func TestQueryChecksCatchMistakes(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	cases := map[string]struct{ expr, want string }{
		"syntax":             {`sum(rate(chat_gateway_connects_total[5m])`, "unclosed"},
		"unknown metric":     {`chat_gateway_connection`, "not in CONTRACT.md"},
		"bare histogram":     {`rate(chat_gateway_ack_latency_seconds[5m])`, "use _bucket"},
		"suffix on counter":  {`chat_gateway_connects_total_count`, "not in CONTRACT.md"},
		"unknown label":      {`chat_gateway_connections{reason="drain"}`, "has no label reason"},
		"bad label value":    {`chat_gateway_disconnects_total{reason="timeout"}`, "value not in"},
		"group by missing":   {`sum by (op) (chat_gateway_connections)`, "does not have"},
		"rate of gauge":      {`rate(chat_gateway_connections[5m])`, "not a counter"},
		"quantile drops le":  {`histogram_quantile(0.99, sum(rate(chat_gateway_ack_latency_seconds_bucket[5m])))`, "drops le"},
		"quantile of sum":    {`histogram_quantile(0.99, sum by (le) (rate(chat_gateway_ack_latency_seconds_sum[5m])))`, "not a _bucket"},
		"le off buckets":     {`chat_gateway_ack_latency_seconds_count{le="1"}`, "has no label le"},
		"deriv of counter":   {`deriv(chat_store_messages_written_total[5m])`, "not a gauge"},
		"name via matcher":   {`{__name__="chat_nope"}`, "not in CONTRACT.md"},
		"store op value":     {`chat_store_backend_errors_total{op="write"}`, "value not in"},
		"nats exporter name": {`gnatsd_varz_connections`, "not in CONTRACT.md"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			errs := checkQuery(p, query{"test", tc.expr})
			if !strings.Contains(fmt.Sprint(errs), tc.want) {
				t.Errorf("%s: want an error containing %q, got %v", tc.expr, tc.want, errs)
			}
		})
	}
	// And what must pass does.
	for _, ok := range []string{
		`sum by (reason) (rate(chat_gateway_disconnects_total{namespace="$namespace"}[5m]))`,
		`histogram_quantile(0.99, sum by (op, le) (rate(chat_store_backend_latency_seconds_bucket[5m])))`,
		`max(deriv(chat_store_consumer_pending_messages[15m])) > 0`,
		`sum by (pod) (rate(go_gc_duration_seconds_count[5m]))`,
		`up{job="chat-gateway"} == 0`,
	} {
		if errs := checkQuery(p, query{"test", ok}); len(errs) > 0 {
			t.Errorf("%s: %v", ok, errs)
		}
	}
}

func TestDashboardVariables(t *testing.T) {
	d := &dashboard{}
	d.Panels = []panel{{ID: 1, Title: "x", Targets: []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	}{{Expr: `sum(chat_gateway_connections{pod="$podname"})`, RefID: "A"}}}}
	if _, _, err := dashboardQueries(d); err == nil || !strings.Contains(err.Error(), "unknown variable $podname") {
		t.Errorf("want unknown variable error, got %v", err)
	}
}
