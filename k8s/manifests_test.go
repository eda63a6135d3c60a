package k8s

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// overlayWant is what each overlay is documented to deploy (README).
type overlayWant struct {
	nats, cassandra, stores int32
	// gateways is the fixed gateway count; 0 means an HPA owns it, within
	// gatewayMin..gatewayMax.
	gateways               int32
	gatewayMin, gatewayMax int32
	replication            map[string]int
	monitoring             bool
	ingress, httpRoute     bool
	connectionsHPA         bool
}

var prodWant = overlayWant{
	nats: 3, cassandra: 3, stores: 3,
	gatewayMin: 3, gatewayMax: 30,
	replication: map[string]int{"datacenter1": 3},
	monitoring:  true,
	ingress:     true,
}

var overlayWants = map[string]overlayWant{
	"dev": {
		nats: 1, cassandra: 1, stores: 1, gateways: 1,
		replication: map[string]int{"": 1},
		ingress:     true,
	},
	"prod": prodWant,
	"prod-connections-hpa": func() overlayWant {
		w := prodWant
		w.connectionsHPA = true
		return w
	}(),
	"prod-gateway-api": func() overlayWant {
		w := prodWant
		w.ingress, w.httpRoute = false, true
		return w
	}(),
}

const dashboardFile = "dashboards/chat.json"

func TestOverlays(t *testing.T) {
	dirs, err := overlayDirs()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			want, ok := overlayWants[dir]
			if !ok {
				t.Fatalf("overlay %s has no entry in overlayWants", dir)
			}
			c, err := loadCluster(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range genericChecks {
				t.Run(ch.name, func(t *testing.T) {
					for _, err := range ch.fn(c) {
						t.Error(err)
					}
				})
			}
			t.Run("as documented", func(t *testing.T) {
				for _, err := range checkWant(c, want) {
					t.Error(err)
				}
			})
		})
	}
}

func replicasOf(p *int32) int32 {
	if p == nil {
		return 1 // the API server's default
	}
	return *p
}

func checkWant(c *cluster, w overlayWant) []error {
	var errs []error
	for name, n := range map[string]int32{"nats": w.nats, "cassandra": w.cassandra} {
		if st := c.statefulSet(name); st == nil {
			errs = append(errs, fmt.Errorf("no StatefulSet %s", name))
		} else if got := replicasOf(st.Spec.Replicas); got != n {
			errs = append(errs, fmt.Errorf("StatefulSet/%s: %d replicas, want %d", name, got, n))
		}
	}
	if d := c.deployment("chat", "chat-store"); d == nil {
		errs = append(errs, fmt.Errorf("no Deployment chat-store"))
	} else if got := replicasOf(d.Spec.Replicas); got != w.stores {
		errs = append(errs, fmt.Errorf("Deployment/chat-store: %d replicas, want %d", got, w.stores))
	}

	gw := c.deployment("chat", "chat-gateway")
	if gw == nil {
		return append(errs, fmt.Errorf("no Deployment chat-gateway"))
	}
	var hpaMetrics []string
	hpas := 0
	for _, h := range c.hpas {
		if h.Spec.ScaleTargetRef.Name != gw.Name {
			continue
		}
		hpas++
		if w.gateways == 0 && (h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != w.gatewayMin || h.Spec.MaxReplicas != w.gatewayMax) {
			errs = append(errs, fmt.Errorf("HPA/%s: replicas %v..%d, want %d..%d", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas, w.gatewayMin, w.gatewayMax))
		}
		for _, m := range h.Spec.Metrics {
			if m.Pods != nil {
				hpaMetrics = append(hpaMetrics, m.Pods.Metric.Name)
			}
		}
	}
	switch {
	case w.gateways > 0 && hpas > 0:
		errs = append(errs, fmt.Errorf("gateways should be fixed at %d, but an HPA scales them", w.gateways))
	case w.gateways > 0 && replicasOf(gw.Spec.Replicas) != w.gateways:
		errs = append(errs, fmt.Errorf("Deployment/chat-gateway: %d replicas, want %d", replicasOf(gw.Spec.Replicas), w.gateways))
	case w.gateways == 0 && hpas != 1:
		errs = append(errs, fmt.Errorf("want one HPA on chat-gateway, found %d", hpas))
	}
	wantMetrics := []string(nil)
	if w.connectionsHPA {
		wantMetrics = []string{"chat_gateway_connections"}
	}
	if !reflect.DeepEqual(hpaMetrics, wantMetrics) {
		errs = append(errs, fmt.Errorf("gateway HPA Pods metrics %v, want %v", hpaMetrics, wantMetrics))
	}

	for _, j := range c.jobs {
		for _, ct := range j.Spec.Template.Spec.Containers {
			if chatCommand(&ct) != "migrate" {
				continue
			}
			got, err := replicationArgs(ct.Args)
			if err != nil || !reflect.DeepEqual(got, w.replication) {
				errs = append(errs, fmt.Errorf("Job/%s: replication %v (%v), want %v", j.Name, got, err, w.replication))
			}
		}
	}

	if n := len(c.ingresses); (n > 0) != w.ingress {
		errs = append(errs, fmt.Errorf("%d Ingresses, want ingress=%v", n, w.ingress))
	}
	if n := len(c.httpRoutes); (n == 1) != w.httpRoute || n > 1 {
		errs = append(errs, fmt.Errorf("%d HTTPRoutes, want httpRoute=%v", n, w.httpRoute))
	}
	errs = append(errs, checkMonitoringPresent(c, w.monitoring)...)
	return errs
}

// checkMonitoringPresent: with monitoring, every chat component and NATS is
// scraped, the rules are there and the dashboard ConfigMap carries the
// sidecar label and exactly the file's content.
func checkMonitoringPresent(c *cluster, want bool) []error {
	var errs []error
	var dash *corev1.ConfigMap
	for _, cm := range c.configMaps {
		if _, ok := cm.Data["chat.json"]; ok {
			dash = cm
		}
	}
	if !want {
		if len(c.serviceMonitors)+len(c.podMonitors)+len(c.rules) > 0 || dash != nil {
			errs = append(errs, fmt.Errorf("monitoring objects present in an overlay documented without them"))
		}
		return errs
	}
	if len(c.rules) != 1 {
		errs = append(errs, fmt.Errorf("%d PrometheusRules, want 1", len(c.rules)))
	}
	scraped := map[string]bool{}
	for _, sm := range c.serviceMonitors {
		for _, s := range c.services {
			if ok, _ := selectorMatches(&sm.Spec.Selector, s.Labels); ok {
				scraped["Service/"+s.Name] = true
			}
		}
	}
	for _, s := range []string{"Service/chat-gateway", "Service/chat-store"} {
		if !scraped[s] {
			errs = append(errs, fmt.Errorf("no ServiceMonitor scrapes %s", s))
		}
	}
	natsScraped := false
	for _, pm := range c.podMonitors {
		if st := c.statefulSet("nats"); st != nil {
			if ok, _ := selectorMatches(&pm.Spec.Selector, st.Spec.Template.Labels); ok {
				natsScraped = true
			}
		}
	}
	if !natsScraped {
		errs = append(errs, fmt.Errorf("no PodMonitor scrapes the NATS exporter"))
	}
	if dash == nil {
		return append(errs, fmt.Errorf("no dashboard ConfigMap"))
	}
	if dash.Labels["grafana_dashboard"] != "1" {
		errs = append(errs, fmt.Errorf("ConfigMap/%s: missing label grafana_dashboard=\"1\"", dash.Name))
	}
	file, err := os.ReadFile(dashboardFile)
	if err != nil {
		return append(errs, err)
	}
	if dash.Data["chat.json"] != string(file) {
		errs = append(errs, fmt.Errorf("ConfigMap/%s: content differs from %s", dash.Name, dashboardFile))
	}
	return errs
}

// TestChecksCatchMistakes breaks a good overlay in the ways the checks are
// there for, and expects each check to notice: a check that passes
// everything would otherwise go unseen.
func TestChecksCatchMistakes(t *testing.T) {
	gatewayCt := func(c *cluster) *corev1.Container {
		return &c.deployment("chat", "chat-gateway").Spec.Template.Spec.Containers[0]
	}
	setEnv := func(ct *corev1.Container, name, value string) {
		for i := range ct.Env {
			if ct.Env[i].Name == name {
				ct.Env[i].Value = value
				return
			}
		}
		ct.Env = append(ct.Env, corev1.EnvVar{Name: name, Value: value})
	}
	cases := []struct {
		name   string
		check  func(*cluster) []error
		break_ func(*cluster)
		want   string
	}{
		{"no readiness probe", checkProbes, func(c *cluster) { gatewayCt(c).ReadinessProbe = nil }, "no readiness probe"},
		{"liveness on /readyz", checkProbes, func(c *cluster) { gatewayCt(c).LivenessProbe.HTTPGet.Path = "/readyz" }, "liveness probe must be GET /healthz"},
		{"probe on wrong port", checkProbes, func(c *cluster) {
			c.deployment("chat", "chat-store").Spec.Template.Spec.Containers[0].StartupProbe.HTTPGet.Port = intstr.FromInt32(8080)
		}, "not a container port"},
		{"grace shorter than drain", checkGatewayDrain, func(c *cluster) {
			c.deployment("chat", "chat-gateway").Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](12)
		}, "not longer than preStop + drain"},
		{"longer drain", checkGatewayDrain, func(c *cluster) { setEnv(gatewayCt(c), "CHAT_DRAIN", "40s") }, "not longer than preStop + drain"},
		{"no preStop", checkGatewayDrain, func(c *cluster) { gatewayCt(c).Lifecycle = nil }, "no preStop hook"},
		{"maxUnavailable 1", checkGatewayDrain, func(c *cluster) {
			c.deployment("chat", "chat-gateway").Spec.Strategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(1))
		}, "maxUnavailable 0"},
		{"service targets missing port", checkServices, func(c *cluster) {
			c.service("chat", "chat-gateway").Spec.Ports[0].TargetPort = intstr.FromString("web")
		}, "does not expose"},
		{"service selects nothing", checkServices, func(c *cluster) {
			c.service("chat", "chat-store").Spec.Selector["app.kubernetes.io/component"] = "stores"
		}, "matches no pods"},
		{"headless service not publishing", checkServices, func(c *cluster) {
			c.service("chat", "nats-headless").Spec.PublishNotReadyAddresses = false
		}, "publish not-ready"},
		{"selector off template", checkWorkloadSelectors, func(c *cluster) {
			c.deployment("chat", "chat-store").Spec.Template.Labels["app.kubernetes.io/component"] = "storage"
		}, "does not match template labels"},
		{"pdb selects nothing", checkPDBs, func(c *cluster) {
			c.pdbs[0].Spec.Selector.MatchLabels["app.kubernetes.io/name"] = "nobody"
		}, "selects 0 workloads"},
		{"hpa on missing deployment", checkHPAs, func(c *cluster) { c.hpas[0].Spec.ScaleTargetRef.Name = "chat-gw" }, "does not exist"},
		{"hpa fast scale-down", checkHPAs, func(c *cluster) {
			c.hpas[0].Spec.Behavior.ScaleDown.StabilizationWindowSeconds = ptr.To[int32](60)
		}, "at least 600"},
		{"hpa with replicas set", checkHPAs, func(c *cluster) {
			c.deployment("chat", "chat-gateway").Spec.Replicas = ptr.To[int32](3)
		}, "sets replicas"},
		{"privilege escalation", checkSecurity, func(c *cluster) {
			gatewayCt(c).SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
		}, "allowPrivilegeEscalation"},
		{"writable root fs", checkSecurity, func(c *cluster) {
			gatewayCt(c).SecurityContext.ReadOnlyRootFilesystem = ptr.To(false)
		}, "readOnlyRootFilesystem"},
		{"root", checkSecurity, func(c *cluster) {
			c.deployment("chat", "chat-store").Spec.Template.Spec.SecurityContext.RunAsNonRoot = nil
		}, "runAsNonRoot"},
		{"caps kept", checkSecurity, func(c *cluster) {
			c.statefulSet("nats").Spec.Template.Spec.Containers[1].SecurityContext.Capabilities = nil
		}, "drop ALL"},
		{"no limits", checkResources, func(c *cluster) {
			c.deployment("chat", "chat-store").Spec.Template.Spec.Containers[0].Resources.Limits = nil
		}, "needs both a request and a limit"},
		{"GOMEMLIMIT above limit", checkResources, func(c *cluster) { setEnv(gatewayCt(c), "GOMEMLIMIT", "4GiB") }, "not below the memory limit"},
		{"jwt literal", checkChatProcesses, func(c *cluster) { setEnv(gatewayCt(c), "CHAT_JWT_SECRET", "hunter2") }, "must come from a Secret"},
		{"stream replicas off", checkChatProcesses, func(c *cluster) { setEnv(gatewayCt(c), "CHAT_STREAM_REPLICAS", "1") }, "not the NATS replica count"},
		{"local dc off", checkChatProcesses, func(c *cluster) {
			setEnv(&c.deployment("chat", "chat-store").Spec.Template.Spec.Containers[0], "CHAT_LOCAL_DC", "dc1")
		}, "Cassandra's data centre"},
		{"metrics on loopback", checkChatProcesses, func(c *cluster) { setEnv(gatewayCt(c), "CHAT_METRICS_ADDR", "127.0.0.1:9090") }, "every interface"},
		{"metrics on the public port", checkChatProcesses, func(c *cluster) {
			setEnv(&c.deployment("chat", "chat-store").Spec.Template.Spec.Containers[0], "CHAT_METRICS_ADDR", ":8081")
		}, "not the container port named metrics"},
		{"metrics address missing", checkChatProcesses, func(c *cluster) {
			ct := &c.deployment("chat", "chat-push").Spec.Template.Spec.Containers[0]
			ct.Env = slices.DeleteFunc(ct.Env, func(e corev1.EnvVar) bool { return e.Name == "CHAT_METRICS_ADDR" })
		}, "CHAT_METRICS_ADDR not set"},
		{"nats user of another role", checkChatProcesses, func(c *cluster) { setEnv(gatewayCt(c), "CHAT_NATS_USER", "store") }, "want \"gateway\""},
		{"nats url to nowhere", checkChatProcesses, func(c *cluster) { setEnv(gatewayCt(c), "CHAT_NATS", "nats://nats-client:4222") }, "names no Service"},
		{"more nats pods than routes", checkNATS, func(c *cluster) { c.statefulSet("nats").Spec.Replicas = ptr.To[int32](5) }, "routes for 5 replicas"},
		{"nats grace too short", checkNATS, func(c *cluster) {
			c.statefulSet("nats").Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](30)
		}, "lame duck"},
		{"seed beyond replicas", checkCassandra, func(c *cluster) {
			setEnv(&c.statefulSet("cassandra").Spec.Template.Spec.Containers[0], "CASSANDRA_SEEDS", "cassandra-5.cassandra-headless")
		}, "is not a pod"},
		{"wrong data centre", checkMigration, func(c *cluster) {
			ct := &c.jobs[0].Spec.Template.Spec.Containers[0]
			ct.Args[len(ct.Args)-1] = "dc1:3"
		}, "Cassandra's is \"datacenter1\""},
		{"rf above node count", checkMigration, func(c *cluster) { c.statefulSet("cassandra").Spec.Replicas = ptr.To[int32](2) }, "replication factor 3 with 2"},
		{"service monitor on missing port", checkMonitors, func(c *cluster) { c.serviceMonitors[0].Spec.Endpoints[0].Port = "prom" }, "has no port"},
		{"pod monitor on missing port", checkMonitors, func(c *cluster) { c.podMonitors[0].Spec.PodMetricsEndpoints[0].Port = ptr.To("prom") }, "not a container port"},
		{"ingress short timeout", checkIngresses, func(c *cluster) {
			c.ingresses[0].Annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] = "60"
		}, "at least 3600"},
		{"metrics exposed", checkIngresses, func(c *cluster) { c.ingresses = c.ingresses[:1] }, "/metrics is reachable"},
		{"wrong namespace", checkNamesAndNamespace, func(c *cluster) { c.service("chat", "nats").Namespace = "default" }, "want chat"},
		{"replica count", func(c *cluster) []error { return checkWant(c, prodWant) }, func(c *cluster) {
			c.deployment("chat", "chat-store").Spec.Replicas = ptr.To[int32](1)
		}, "1 replicas, want 3"},
		{"dashboard drift", func(c *cluster) []error { return checkWant(c, prodWant) }, func(c *cluster) {
			for _, cm := range c.configMaps {
				if _, ok := cm.Data["chat.json"]; ok {
					cm.Data["chat.json"] += " "
				}
			}
		}, "content differs"},
	}
	prod, err := loadCluster("prod")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := prod.deepCopy()
			if err != nil {
				t.Fatal(err)
			}
			if errs := tc.check(c); len(errs) != 0 {
				t.Fatalf("check fails before the change: %v", errs)
			}
			tc.break_(c)
			errs := tc.check(c)
			for _, err := range errs {
				if strings.Contains(err.Error(), tc.want) {
					return
				}
			}
			t.Errorf("want an error containing %q, got %v", tc.want, errs)
		})
	}
}

// TestHTTPRouteChecksCatchMistakes does the same for the Gateway API overlay.
func TestHTTPRouteChecksCatchMistakes(t *testing.T) {
	c, err := loadCluster("prod-gateway-api")
	if err != nil {
		t.Fatal(err)
	}
	if errs := checkHTTPRoutes(c); len(errs) != 0 {
		t.Fatal(errs)
	}
	// Drop the rule that blocks /metrics (the one without backends).
	c.httpRoutes[0].Spec.Rules = slices.DeleteFunc(c.httpRoutes[0].Spec.Rules, func(r gatewayv1.HTTPRouteRule) bool {
		return len(r.BackendRefs) == 0
	})
	for i := range c.httpRoutes[0].Spec.Rules {
		c.httpRoutes[0].Spec.Rules[i].Timeouts = nil
		for j := range c.httpRoutes[0].Spec.Rules[i].BackendRefs {
			c.httpRoutes[0].Spec.Rules[i].BackendRefs[j].Name = "chat"
		}
	}
	got := fmt.Sprint(checkHTTPRoutes(c))
	for _, want := range []string{"must disable the request timeout", "backend Service chat does not exist", "/metrics is reachable"} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in %s", want, got)
		}
	}
}

func TestStrictDecoding(t *testing.T) {
	cases := map[string]struct{ doc, want string }{
		"unknown field": {`apiVersion: apps/v1
kind: Deployment
metadata: {name: x, namespace: chat}
spec:
  replica: 3
  selector: {matchLabels: {a: b}}
  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}
`, `unknown field "spec.replica"`},
		"misplaced field": {`apiVersion: v1
kind: Service
metadata: {name: x, namespace: chat}
spec:
  ports: [{port: 80, targetPort: http, timeoutSeconds: 3600}]
`, `unknown field "spec.ports[0].timeoutSeconds"`},
		"duplicate field": {`apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: x, namespace: chat}
spec:
  groups:
    - name: g
      rules:
        - alert: A
          expr: up == 0
          expr: up == 1
`, `already set`},
		"unknown kind": {`apiVersion: example.com/v1
kind: Widget
metadata: {name: x}
`, `no kind "Widget" is registered`},
		"wrong type": {`apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: x, namespace: chat}
spec:
  maxUnavailable: [1]
`, `unmarshal`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := decodeCluster("test", [][]byte{[]byte(tc.doc)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}
