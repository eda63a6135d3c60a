package k8s

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// A check looks at a whole overlay and returns every problem it finds.
type check struct {
	name string
	fn   func(c *cluster) []error
}

// genericChecks hold for every overlay.
var genericChecks = []check{
	{"unique names and one namespace", checkNamesAndNamespace},
	{"workload selectors match templates", checkWorkloadSelectors},
	{"probes", checkProbes},
	{"resources", checkResources},
	{"security context", checkSecurity},
	{"chat processes", checkChatProcesses},
	{"gateway drain", checkGatewayDrain},
	{"services select pods and ports", checkServices},
	{"pod disruption budgets", checkPDBs},
	{"autoscalers", checkHPAs},
	{"ingress", checkIngresses},
	{"http routes", checkHTTPRoutes},
	{"monitors", checkMonitors},
	{"nats", checkNATS},
	{"cassandra", checkCassandra},
	{"migration job", checkMigration},
}

// chatSubcommands are the subcommands of the chat binary that run in pods.
var chatSubcommands = map[string]bool{"gateway": true, "store": true, "push": true, "migrate": true}

// chatCommand returns the chat subcommand a container runs, or "".
func chatCommand(ct *corev1.Container) string {
	if len(ct.Command) == 0 && len(ct.Args) > 0 && chatSubcommands[ct.Args[0]] {
		return ct.Args[0]
	}
	return ""
}

func envValue(ct *corev1.Container, name string) (string, bool) {
	for _, e := range ct.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

func objectMeta(obj runtime.Object) (kind string, m metav1.Object, err error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return "", nil, fmt.Errorf("%T has no metadata", obj)
	}
	kind = strings.TrimPrefix(fmt.Sprintf("%T", obj), "*")
	return kind, m, nil
}

func checkNamesAndNamespace(c *cluster) []error {
	var errs []error
	seen := map[string]bool{}
	for _, obj := range c.all {
		kind, m, err := objectMeta(obj)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		key := kind + "/" + m.GetNamespace() + "/" + m.GetName()
		if seen[key] {
			errs = append(errs, fmt.Errorf("%s defined twice", key))
		}
		seen[key] = true
		if m.GetNamespace() != "chat" {
			errs = append(errs, fmt.Errorf("%s %s: namespace %q, want chat (README creates it)", kind, m.GetName(), m.GetNamespace()))
		}
		if m.GetLabels()["app.kubernetes.io/part-of"] != "chat" {
			errs = append(errs, fmt.Errorf("%s %s: missing label app.kubernetes.io/part-of=chat", kind, m.GetName()))
		}
	}
	return errs
}

func selectorMatches(sel *metav1.LabelSelector, set map[string]string) (bool, error) {
	if sel == nil {
		return false, fmt.Errorf("no selector")
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, err
	}
	if s.Empty() {
		return false, fmt.Errorf("empty selector selects everything")
	}
	return s.Matches(labels.Set(set)), nil
}

func checkWorkloadSelectors(c *cluster) []error {
	var errs []error
	check := func(id string, sel *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec) {
		ok, err := selectorMatches(sel, tmpl.Labels)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: selector: %w", id, err))
		} else if !ok {
			errs = append(errs, fmt.Errorf("%s: selector %v does not match template labels %v", id, sel, tmpl.Labels))
		}
		for _, tsc := range tmpl.Spec.TopologySpreadConstraints {
			ok, err := selectorMatches(tsc.LabelSelector, tmpl.Labels)
			if err != nil || !ok {
				errs = append(errs, fmt.Errorf("%s: topologySpreadConstraint on %s does not select its own pods (%v)", id, tsc.TopologyKey, err))
			}
		}
	}
	for _, d := range c.deployments {
		check("Deployment/"+d.Name, d.Spec.Selector, &d.Spec.Template)
	}
	for _, s := range c.statefulSets {
		check("StatefulSet/"+s.Name, s.Spec.Selector, &s.Spec.Template)
	}
	return errs
}

// findPort resolves a probe, Service or monitor port (name or number)
// against a container's ports.
func findPort(ports []corev1.ContainerPort, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

func probePort(p *corev1.Probe) (intstr.IntOrString, bool) {
	switch {
	case p.HTTPGet != nil:
		return p.HTTPGet.Port, true
	case p.TCPSocket != nil:
		return p.TCPSocket.Port, true
	case p.GRPC != nil:
		return intstr.FromInt32(p.GRPC.Port), true
	}
	return intstr.IntOrString{}, false
}

// addrPort returns the port of a listen address such as ":8080".
func addrPort(addr string) (int32, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(p, 10, 32)
	return int32(n), err
}

func checkProbes(c *cluster) []error {
	var errs []error
	for _, w := range c.workloads() {
		if w.kind == "Job" {
			// A run-to-completion container has nothing to be ready for.
			continue
		}
		for i := range w.tmpl.Spec.Containers {
			ct := &w.tmpl.Spec.Containers[i]
			id := w.id + "/" + ct.Name
			probes := map[string]*corev1.Probe{"startup": ct.StartupProbe, "liveness": ct.LivenessProbe, "readiness": ct.ReadinessProbe}
			for _, kind := range []string{"startup", "liveness", "readiness"} {
				p := probes[kind]
				if p == nil {
					errs = append(errs, fmt.Errorf("%s: no %s probe", id, kind))
					continue
				}
				if port, ok := probePort(p); ok {
					if _, found := findPort(ct.Ports, port); !found {
						errs = append(errs, fmt.Errorf("%s: %s probe port %s is not a container port", id, kind, port.String()))
					}
				} else if p.Exec == nil {
					errs = append(errs, fmt.Errorf("%s: %s probe has no handler", id, kind))
				}
			}
			cmd := chatCommand(ct)
			if cmd != "gateway" && cmd != "store" {
				continue
			}
			// The chat processes: /healthz for startup and liveness (never
			// depends on NATS), /readyz for readiness, on the --addr port.
			addr, ok := envValue(ct, "CHAT_ADDR")
			if !ok {
				errs = append(errs, fmt.Errorf("%s: CHAT_ADDR not set", id))
				continue
			}
			want, err := addrPort(addr)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: CHAT_ADDR %q: %w", id, addr, err))
				continue
			}
			paths := map[string]string{"startup": "/healthz", "liveness": "/healthz", "readiness": "/readyz"}
			for kind, path := range paths {
				p := probes[kind]
				if p == nil {
					continue
				}
				if p.HTTPGet == nil || p.HTTPGet.Path != path {
					errs = append(errs, fmt.Errorf("%s: %s probe must be GET %s", id, kind, path))
					continue
				}
				if cp, ok := findPort(ct.Ports, p.HTTPGet.Port); !ok || cp.ContainerPort != want {
					errs = append(errs, fmt.Errorf("%s: %s probe port %s is not CHAT_ADDR's port %d", id, kind, p.HTTPGet.Port.String(), want))
				}
			}
			if _, ok := findPort(ct.Ports, intstr.FromInt32(want)); !ok {
				errs = append(errs, fmt.Errorf("%s: CHAT_ADDR port %d is not declared as a container port", id, want))
			}
		}
	}
	return errs
}

func allContainers(spec *corev1.PodSpec) []*corev1.Container {
	var cs []*corev1.Container
	for i := range spec.InitContainers {
		cs = append(cs, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		cs = append(cs, &spec.Containers[i])
	}
	return cs
}

func checkResources(c *cluster) []error {
	var errs []error
	for _, w := range c.workloads() {
		for _, ct := range allContainers(&w.tmpl.Spec) {
			id := w.id + "/" + ct.Name
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, hasReq := ct.Resources.Requests[r]
				lim, hasLim := ct.Resources.Limits[r]
				if !hasReq || !hasLim {
					errs = append(errs, fmt.Errorf("%s: %s needs both a request and a limit", id, r))
					continue
				}
				if req.Cmp(lim) > 0 {
					errs = append(errs, fmt.Errorf("%s: %s request %s above limit %s", id, r, req.String(), lim.String()))
				}
			}
			// A Go soft memory limit at or above the hard one is useless.
			if v, ok := envValue(ct, "GOMEMLIMIT"); ok {
				q, err := parseGoMemLimit(v)
				lim := ct.Resources.Limits[corev1.ResourceMemory]
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: GOMEMLIMIT %q: %w", id, v, err))
				} else if q.Cmp(lim) >= 0 {
					errs = append(errs, fmt.Errorf("%s: GOMEMLIMIT %s is not below the memory limit %s", id, v, lim.String()))
				}
			}
		}
	}
	return errs
}

// parseGoMemLimit reads the GOMEMLIMIT forms used here (a number with an
// optional B, KiB, MiB or GiB suffix) as a Kubernetes quantity.
func parseGoMemLimit(v string) (resource.Quantity, error) {
	return resource.ParseQuantity(strings.TrimSuffix(v, "B"))
}

// writableRootFS lists the containers allowed a writable root file system,
// with the reason.
var writableRootFS = map[string]string{
	"StatefulSet/cassandra/cassandra": "the cassandra image's entrypoint rewrites /etc/cassandra at start",
}

func checkSecurity(c *cluster) []error {
	var errs []error
	for _, w := range c.workloads() {
		pod := w.tmpl.Spec.SecurityContext
		if w.tmpl.Spec.HostNetwork || w.tmpl.Spec.HostPID || w.tmpl.Spec.HostIPC {
			errs = append(errs, fmt.Errorf("%s: uses host namespaces", w.id))
		}
		if am := w.tmpl.Spec.AutomountServiceAccountToken; am == nil || *am {
			errs = append(errs, fmt.Errorf("%s: automountServiceAccountToken must be false (nothing here talks to the API server)", w.id))
		}
		for _, ct := range allContainers(&w.tmpl.Spec) {
			id := w.id + "/" + ct.Name
			sc := ct.SecurityContext
			if sc == nil {
				errs = append(errs, fmt.Errorf("%s: no securityContext", id))
				continue
			}
			nonRoot := sc.RunAsNonRoot
			if nonRoot == nil && pod != nil {
				nonRoot = pod.RunAsNonRoot
			}
			if nonRoot == nil || !*nonRoot {
				errs = append(errs, fmt.Errorf("%s: runAsNonRoot is not true", id))
			}
			uid := sc.RunAsUser
			if uid == nil && pod != nil {
				uid = pod.RunAsUser
			}
			if uid != nil && *uid == 0 {
				errs = append(errs, fmt.Errorf("%s: runs as uid 0", id))
			}
			if sc.Privileged != nil && *sc.Privileged {
				errs = append(errs, fmt.Errorf("%s: privileged", id))
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				errs = append(errs, fmt.Errorf("%s: allowPrivilegeEscalation must be false", id))
			}
			if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
				errs = append(errs, fmt.Errorf("%s: capabilities must drop ALL", id))
			} else if len(sc.Capabilities.Add) > 0 {
				errs = append(errs, fmt.Errorf("%s: adds capabilities %v", id, sc.Capabilities.Add))
			}
			ro := sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
			if _, exempt := writableRootFS[id]; !ro && !exempt {
				errs = append(errs, fmt.Errorf("%s: readOnlyRootFilesystem must be true", id))
			}
			seccomp := sc.SeccompProfile
			if seccomp == nil && pod != nil {
				seccomp = pod.SeccompProfile
			}
			if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				errs = append(errs, fmt.Errorf("%s: seccompProfile must be RuntimeDefault", id))
			}
		}
	}
	return errs
}

// checkChatProcesses checks how the chat binary is configured: every flag
// through its CHAT_ environment twin, the JWT secret from the Secret the
// README creates, and NATS and Cassandra addresses naming Services here.
func checkChatProcesses(c *cluster) []error {
	var errs []error
	for _, w := range c.workloads() {
		for i := range w.tmpl.Spec.Containers {
			ct := &w.tmpl.Spec.Containers[i]
			cmd := chatCommand(ct)
			if cmd == "" {
				continue
			}
			id := w.id + "/" + ct.Name
			required := map[string][]string{
				"gateway": {"CHAT_ADDR", "CHAT_NATS", "CHAT_JWT_SECRET", "CHAT_DRAIN", "CHAT_STREAM_REPLICAS"},
				"store":   {"CHAT_ADDR", "CHAT_NATS", "CHAT_CASSANDRA", "CHAT_KEYSPACE", "CHAT_CONSISTENCY", "CHAT_STREAM_REPLICAS"},
			}[cmd]
			if cmd == "gateway" || cmd == "store" || cmd == "push" {
				// Its own NATS user (nats-auth.conf), the password from
				// the Secret chat-nats.
				if u, _ := envValue(ct, "CHAT_NATS_USER"); u != cmd {
					errs = append(errs, fmt.Errorf("%s: CHAT_NATS_USER %q, want %q", id, u, cmd))
				}
				pw := corev1.EnvVar{}
				for _, e := range ct.Env {
					if e.Name == "CHAT_NATS_PASSWORD" {
						pw = e
					}
				}
				if pw.ValueFrom == nil || pw.ValueFrom.SecretKeyRef == nil || pw.ValueFrom.SecretKeyRef.Name != "chat-nats" ||
					pw.ValueFrom.SecretKeyRef.Key != cmd+"-password" {
					errs = append(errs, fmt.Errorf("%s: CHAT_NATS_PASSWORD must read Secret chat-nats key %s-password", id, cmd))
				}
				// Metrics on a port of their own (the default is loopback,
				// which Prometheus cannot reach).
				required = append(required, "CHAT_METRICS_ADDR")
				if v, ok := envValue(ct, "CHAT_METRICS_ADDR"); ok {
					errs = append(errs, checkMetricsAddr(ct, id, v)...)
				}
			}
			have := map[string]corev1.EnvVar{}
			for _, e := range ct.Env {
				have[e.Name] = e
			}
			for _, name := range required {
				if _, ok := have[name]; !ok {
					errs = append(errs, fmt.Errorf("%s: %s not set", id, name))
				}
			}
			if cmd == "gateway" {
				e := have["CHAT_JWT_SECRET"]
				if e.Value != "" {
					errs = append(errs, fmt.Errorf("%s: CHAT_JWT_SECRET must come from a Secret, not a literal", id))
				} else if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
					e.ValueFrom.SecretKeyRef.Name != "chat-jwt" || e.ValueFrom.SecretKeyRef.Key != "secret" {
					errs = append(errs, fmt.Errorf("%s: CHAT_JWT_SECRET must read Secret chat-jwt key secret (README)", id))
				}
			}
			if v, ok := envValue(ct, "CHAT_NATS"); ok {
				for _, u := range strings.Split(v, ",") {
					errs = append(errs, c.checkServiceURL(w.namespace, id, u, "nats", 4222)...)
				}
			}
			if v, ok := envValue(ct, "CHAT_CASSANDRA"); ok {
				errs = append(errs, c.checkCassandraHosts(w.namespace, id, v)...)
			}
			if v, ok := envValue(ct, "CHAT_KEYSPACE"); ok && v != "chat" {
				errs = append(errs, fmt.Errorf("%s: keyspace %q, the migration Job creates chat", id, v))
			}
			// The stream's replicas must fit the NATS cluster: more than its
			// servers cannot be placed, fewer loses acked messages with a node.
			if v, ok := envValue(ct, "CHAT_STREAM_REPLICAS"); ok {
				n, err := strconv.Atoi(v)
				if st := c.statefulSet("nats"); err != nil || st == nil || int32(n) != replicasOf(st.Spec.Replicas) {
					errs = append(errs, fmt.Errorf("%s: CHAT_STREAM_REPLICAS %q is not the NATS replica count", id, v))
				}
			}
			if v, ok := envValue(ct, "CHAT_LOCAL_DC"); ok {
				if st := c.statefulSet("cassandra"); st == nil || len(st.Spec.Template.Spec.Containers) == 0 {
					errs = append(errs, fmt.Errorf("%s: CHAT_LOCAL_DC without a Cassandra StatefulSet", id))
				} else if dc, _ := envValue(&st.Spec.Template.Spec.Containers[0], "CASSANDRA_DC"); dc != v {
					errs = append(errs, fmt.Errorf("%s: CHAT_LOCAL_DC %q, Cassandra's data centre is %q", id, v, dc))
				}
			}
		}
	}
	return errs
}

// checkMetricsAddr checks that CHAT_METRICS_ADDR listens on every
// interface on the container port named metrics, apart from the public one.
func checkMetricsAddr(ct *corev1.Container, id, addr string) []error {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return []error{fmt.Errorf("%s: CHAT_METRICS_ADDR %q: %v", id, addr, err)}
	}
	if host != "" {
		return []error{fmt.Errorf("%s: CHAT_METRICS_ADDR %q must listen on every interface (\":9090\") for Prometheus", id, addr)}
	}
	p, ok := findPort(ct.Ports, intstr.FromString("metrics"))
	if !ok || strconv.Itoa(int(p.ContainerPort)) != ps {
		return []error{fmt.Errorf("%s: CHAT_METRICS_ADDR %q is not the container port named metrics", id, addr)}
	}
	if a, _ := envValue(ct, "CHAT_ADDR"); strings.HasSuffix(a, ":"+ps) {
		return []error{fmt.Errorf("%s: CHAT_METRICS_ADDR %q is the public port", id, addr)}
	}
	return nil
}

// checkServiceURL checks that a URL such as nats://nats:4222 names a
// Service in namespace that exposes port.
func (c *cluster) checkServiceURL(namespace, id, raw, scheme string, port int32) []error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != scheme {
		return []error{fmt.Errorf("%s: %q is not a %s:// URL", id, raw, scheme)}
	}
	return c.checkServiceHost(namespace, id, u.Host, port)
}

// checkServiceHost checks that host[:port] is a Service here (short name,
// or a StatefulSet pod's name under its headless Service) that exposes port.
func (c *cluster) checkServiceHost(namespace, id, host string, port int32) []error {
	name, p := host, port
	if h, ps, err := net.SplitHostPort(host); err == nil {
		n, err := strconv.ParseInt(ps, 10, 32)
		if err != nil {
			return []error{fmt.Errorf("%s: bad port in %q", id, host)}
		}
		name, p = h, int32(n)
	}
	if p != port {
		return []error{fmt.Errorf("%s: %s uses port %d, want %d", id, host, p, port)}
	}
	parts := strings.Split(name, ".")
	svcName := parts[0]
	if len(parts) == 2 {
		// pod.headless-service
		svcName = parts[1]
	} else if len(parts) > 2 {
		return []error{fmt.Errorf("%s: %s: use namespace-relative names", id, name)}
	}
	svc := c.service(namespace, svcName)
	if svc == nil {
		return []error{fmt.Errorf("%s: %s names no Service %s", id, host, svcName)}
	}
	for _, sp := range svc.Spec.Ports {
		if sp.Port == port {
			return nil
		}
	}
	return []error{fmt.Errorf("%s: Service %s has no port %d", id, svcName, port)}
}

func (c *cluster) checkCassandraHosts(namespace, id, hosts string) []error {
	var errs []error
	for _, h := range strings.Split(hosts, ",") {
		errs = append(errs, c.checkServiceHost(namespace, id, strings.TrimSpace(h), 9042)...)
	}
	return errs
}

// preStopSleep returns how long the preStop hook waits, when it is a sleep.
func preStopSleep(ct *corev1.Container) time.Duration {
	if ct.Lifecycle == nil || ct.Lifecycle.PreStop == nil || ct.Lifecycle.PreStop.Sleep == nil {
		return 0
	}
	return time.Duration(ct.Lifecycle.PreStop.Sleep.Seconds) * time.Second
}

// checkGatewayDrain: the gateway must be able to drain (preStop, then
// SIGTERM, then CHAT_DRAIN) inside its grace period, and rolling updates
// must never remove capacity first.
func checkGatewayDrain(c *cluster) []error {
	var errs []error
	gateways := 0
	for _, d := range c.deployments {
		for i := range d.Spec.Template.Spec.Containers {
			ct := &d.Spec.Template.Spec.Containers[i]
			if chatCommand(ct) != "gateway" {
				continue
			}
			gateways++
			id := "Deployment/" + d.Name + "/" + ct.Name
			if ct.Lifecycle == nil || ct.Lifecycle.PreStop == nil {
				errs = append(errs, fmt.Errorf("%s: no preStop hook", id))
			} else if ct.Lifecycle.PreStop.Exec != nil {
				errs = append(errs, fmt.Errorf("%s: preStop exec needs a shell the distroless image lacks; use sleep", id))
			}
			v, ok := envValue(ct, "CHAT_DRAIN")
			if !ok {
				errs = append(errs, fmt.Errorf("%s: CHAT_DRAIN not set", id))
				continue
			}
			drain, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: CHAT_DRAIN %q: %w", id, v, err))
				continue
			}
			grace := time.Duration(30) * time.Second // the Kubernetes default
			if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
				grace = time.Duration(*g) * time.Second
			}
			// The grace period counts from the start of preStop.
			if need := preStopSleep(ct) + drain; grace <= need {
				errs = append(errs, fmt.Errorf("%s: terminationGracePeriodSeconds %v is not longer than preStop + drain = %v", id, grace, need))
			}
			ru := d.Spec.Strategy.RollingUpdate
			if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.String() != "0" {
				errs = append(errs, fmt.Errorf("Deployment/%s: strategy must be RollingUpdate with maxUnavailable 0", d.Name))
			}
			if len(d.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
				errs = append(errs, fmt.Errorf("Deployment/%s: no topologySpreadConstraints", d.Name))
			}
		}
	}
	if gateways != 1 {
		errs = append(errs, fmt.Errorf("found %d gateway Deployments, want 1", gateways))
	}
	return errs
}

// podsSelectedBy returns the workloads whose pods a label selector (a
// Service's map) picks in namespace.
func (c *cluster) podsSelectedBy(namespace string, sel map[string]string) []workload {
	var ws []workload
	if len(sel) == 0 {
		return nil
	}
	for _, w := range c.workloads() {
		if w.namespace == namespace && labels.SelectorFromSet(sel).Matches(labels.Set(w.tmpl.Labels)) {
			ws = append(ws, w)
		}
	}
	return ws
}

func containerPorts(w workload) []corev1.ContainerPort {
	var ps []corev1.ContainerPort
	for _, ct := range w.tmpl.Spec.Containers {
		ps = append(ps, ct.Ports...)
	}
	return ps
}

func checkServices(c *cluster) []error {
	var errs []error
	for _, s := range c.services {
		id := "Service/" + s.Name
		ws := c.podsSelectedBy(s.Namespace, s.Spec.Selector)
		if len(ws) == 0 {
			errs = append(errs, fmt.Errorf("%s: selector %v matches no pods", id, s.Spec.Selector))
			continue
		}
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(s.Labels)) {
			// ServiceMonitors select Services by these labels.
			errs = append(errs, fmt.Errorf("%s: its own labels %v do not carry its selector %v", id, s.Labels, s.Spec.Selector))
		}
		for _, sp := range s.Spec.Ports {
			tp := sp.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(sp.Port)
			}
			for _, w := range ws {
				cp, ok := findPort(containerPorts(w), tp)
				if !ok {
					errs = append(errs, fmt.Errorf("%s: port %s targets %s, which %s does not expose", id, sp.Name, tp.String(), w.id))
				} else if cp.Protocol != sp.Protocol {
					errs = append(errs, fmt.Errorf("%s: port %s protocol %s, container port %s", id, sp.Name, sp.Protocol, cp.Protocol))
				}
			}
		}
	}
	for _, st := range c.statefulSets {
		svc := c.service(st.Namespace, st.Spec.ServiceName)
		switch {
		case svc == nil:
			errs = append(errs, fmt.Errorf("StatefulSet/%s: serviceName %q is no Service", st.Name, st.Spec.ServiceName))
		case svc.Spec.ClusterIP != corev1.ClusterIPNone:
			errs = append(errs, fmt.Errorf("StatefulSet/%s: Service %s must be headless for per-pod DNS", st.Name, svc.Name))
		case !svc.Spec.PublishNotReadyAddresses:
			errs = append(errs, fmt.Errorf("StatefulSet/%s: Service %s must publish not-ready addresses so peers find each other while starting", st.Name, svc.Name))
		case !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(st.Spec.Template.Labels)):
			errs = append(errs, fmt.Errorf("StatefulSet/%s: Service %s does not select its pods", st.Name, svc.Name))
		}
	}
	return errs
}

func checkPDBs(c *cluster) []error {
	var errs []error
	covered := map[string]bool{}
	for _, p := range c.pdbs {
		matched := 0
		for _, w := range c.workloads() {
			if w.kind == "Job" || w.namespace != p.Namespace {
				continue
			}
			ok, err := selectorMatches(p.Spec.Selector, w.tmpl.Labels)
			if err != nil {
				errs = append(errs, fmt.Errorf("PodDisruptionBudget/%s: %w", p.Name, err))
				break
			}
			if ok {
				matched++
				covered[w.id] = true
			}
		}
		if matched != 1 {
			errs = append(errs, fmt.Errorf("PodDisruptionBudget/%s: selects %d workloads, want 1", p.Name, matched))
		}
		if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.String() != "1" {
			errs = append(errs, fmt.Errorf("PodDisruptionBudget/%s: want maxUnavailable 1 (works at one replica and keeps quorum at three)", p.Name))
		}
	}
	for _, w := range c.workloads() {
		if w.kind != "Job" && !covered[w.id] {
			errs = append(errs, fmt.Errorf("%s: no PodDisruptionBudget", w.id))
		}
	}
	return errs
}

func checkHPAs(c *cluster) []error {
	var errs []error
	for _, h := range c.hpas {
		id := "HorizontalPodAutoscaler/" + h.Name
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" {
			errs = append(errs, fmt.Errorf("%s: targets %s %s, want apps/v1 Deployment", id, ref.APIVersion, ref.Kind))
			continue
		}
		d := c.deployment(h.Namespace, ref.Name)
		if d == nil {
			errs = append(errs, fmt.Errorf("%s: target Deployment %s does not exist", id, ref.Name))
			continue
		}
		if d.Spec.Replicas != nil {
			errs = append(errs, fmt.Errorf("%s: Deployment %s sets replicas, which every kubectl apply would reset under the autoscaler", id, d.Name))
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			errs = append(errs, fmt.Errorf("%s: want 2 <= minReplicas <= maxReplicas", id))
		}
		hasCPU := false
		for _, m := range h.Spec.Metrics {
			switch m.Type {
			case autoscalingv2.ResourceMetricSourceType:
				if m.Resource != nil && m.Resource.Name == corev1.ResourceCPU {
					hasCPU = true
					for _, ct := range d.Spec.Template.Spec.Containers {
						if _, ok := ct.Resources.Requests[corev1.ResourceCPU]; !ok {
							errs = append(errs, fmt.Errorf("%s: CPU utilisation needs a CPU request on %s", id, ct.Name))
						}
					}
				}
			case autoscalingv2.PodsMetricSourceType:
				if m.Pods == nil {
					errs = append(errs, fmt.Errorf("%s: Pods metric without pods", id))
					continue
				}
				if _, ok := knownMetrics[m.Pods.Metric.Name]; !ok {
					errs = append(errs, fmt.Errorf("%s: Pods metric %s is not a known chat metric", id, m.Pods.Metric.Name))
				}
				if m.Pods.Target.Type != autoscalingv2.AverageValueMetricType || m.Pods.Target.AverageValue == nil {
					errs = append(errs, fmt.Errorf("%s: Pods metric target must be an AverageValue", id))
				}
			}
		}
		if !hasCPU {
			errs = append(errs, fmt.Errorf("%s: no CPU metric", id))
		}
		// Removing a gateway drops its connections: scale down slowly.
		b := h.Spec.Behavior
		if b == nil || b.ScaleDown == nil || b.ScaleDown.StabilizationWindowSeconds == nil || *b.ScaleDown.StabilizationWindowSeconds < 600 {
			errs = append(errs, fmt.Errorf("%s: scaleDown stabilizationWindowSeconds must be at least 600", id))
			continue
		}
		for _, p := range b.ScaleDown.Policies {
			if p.Type == autoscalingv2.PercentScalingPolicy && p.Value > 20 {
				errs = append(errs, fmt.Errorf("%s: scaleDown percent policy %d%% is not small", id, p.Value))
			}
		}
		if len(b.ScaleDown.Policies) == 0 {
			errs = append(errs, fmt.Errorf("%s: scaleDown has no policies", id))
		}
	}
	return errs
}

// checkIngresses: the Ingress that carries /ws keeps WebSockets open for an
// hour, and for every host another refuses /metrics to everyone (the
// gateway serves it on its public port).
func checkIngresses(c *cluster) []error {
	var errs []error
	served := map[string]bool{}  // hosts routed to the gateway
	blocked := map[string]bool{} // hosts whose /metrics is refused
	for _, in := range c.ingresses {
		id := "Ingress/" + in.Name
		denyAll := in.Annotations["nginx.ingress.kubernetes.io/denylist-source-range"] == "0.0.0.0/0,::/0"
		for _, r := range in.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, p := range r.HTTP.Paths {
				b := p.Backend.Service
				if b == nil {
					errs = append(errs, fmt.Errorf("%s: path %s has no Service backend", id, p.Path))
					continue
				}
				errs = append(errs, c.checkServicePortRef(in.Namespace, id, b.Name, b.Port.Name, b.Port.Number)...)
				pt := ptrValue(p.PathType)
				switch {
				case p.Path == "/metrics" && pt == "Exact":
					if !denyAll {
						errs = append(errs, fmt.Errorf("%s: routes /metrics without refusing every source", id))
					}
					blocked[r.Host] = true
				case denyAll:
					errs = append(errs, fmt.Errorf("%s: refuses every source on %s too", id, p.Path))
				case p.Path == "/" || p.Path == "/ws":
					served[r.Host] = true
					for _, a := range []string{"nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"} {
						v, err := strconv.Atoi(in.Annotations[a])
						if err != nil || v < 3600 {
							errs = append(errs, fmt.Errorf("%s: %s must be at least 3600 for WebSockets", id, a))
						}
					}
				}
			}
		}
	}
	for _, h := range sortedKeys(served) {
		if !blocked[h] {
			errs = append(errs, fmt.Errorf("host %q: /metrics is reachable from outside; add an Exact /metrics path that refuses every source", h))
		}
	}
	return errs
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func (c *cluster) checkServicePortRef(namespace, id, name, portName string, port int32) []error {
	svc := c.service(namespace, name)
	if svc == nil {
		return []error{fmt.Errorf("%s: backend Service %s does not exist", id, name)}
	}
	for _, sp := range svc.Spec.Ports {
		if (portName != "" && sp.Name == portName) || (portName == "" && sp.Port == port) {
			return nil
		}
	}
	return []error{fmt.Errorf("%s: Service %s has no port %q/%d", id, name, portName, port)}
}

func checkHTTPRoutes(c *cluster) []error {
	var errs []error
	for _, r := range c.httpRoutes {
		id := "HTTPRoute/" + r.Name
		if len(r.Spec.ParentRefs) == 0 {
			errs = append(errs, fmt.Errorf("%s: no parentRefs", id))
		}
		ws, metricsBlocked := false, false
		for _, rule := range r.Spec.Rules {
			for _, m := range rule.Matches {
				if m.Path != nil && m.Path.Value != nil && *m.Path.Value == "/metrics" &&
					ptrValue(m.Path.Type) == "Exact" && len(rule.BackendRefs) == 0 {
					// No backends: the Gateway answers 500 and forwards nothing.
					metricsBlocked = true
				}
				if m.Path != nil && m.Path.Value != nil && *m.Path.Value == "/ws" {
					ws = true
					if rule.Timeouts == nil || rule.Timeouts.Request == nil || *rule.Timeouts.Request != "0s" {
						errs = append(errs, fmt.Errorf("%s: the /ws rule must disable the request timeout (0s)", id))
					}
				}
			}
			for _, b := range rule.BackendRefs {
				if b.Kind != nil && *b.Kind != "Service" {
					errs = append(errs, fmt.Errorf("%s: backend kind %s", id, *b.Kind))
					continue
				}
				if b.Port == nil {
					errs = append(errs, fmt.Errorf("%s: backend %s has no port", id, b.Name))
					continue
				}
				errs = append(errs, c.checkServicePortRef(r.Namespace, id, string(b.Name), "", int32(*b.Port))...)
			}
		}
		if !ws {
			errs = append(errs, fmt.Errorf("%s: no rule for /ws", id))
		}
		if !metricsBlocked {
			errs = append(errs, fmt.Errorf("%s: /metrics is reachable from outside; add an Exact /metrics rule without backends", id))
		}
	}
	return errs
}

func checkMonitors(c *cluster) []error {
	var errs []error
	for _, sm := range c.serviceMonitors {
		id := "ServiceMonitor/" + sm.Name
		var matched []*corev1.Service
		for _, s := range c.services {
			if s.Namespace != sm.Namespace {
				continue
			}
			ok, err := selectorMatches(&sm.Spec.Selector, s.Labels)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
				break
			}
			if ok {
				matched = append(matched, s)
			}
		}
		if len(matched) == 0 {
			errs = append(errs, fmt.Errorf("%s: selects no Service", id))
		}
		for _, ep := range sm.Spec.Endpoints {
			for _, s := range matched {
				if errs2 := c.checkServicePortRef(s.Namespace, id, s.Name, ep.Port, 0); len(errs2) > 0 {
					errs = append(errs, errs2...)
				}
			}
		}
	}
	for _, pm := range c.podMonitors {
		id := "PodMonitor/" + pm.Name
		matched := 0
		for _, w := range c.workloads() {
			if w.namespace != pm.Namespace {
				continue
			}
			ok, err := selectorMatches(&pm.Spec.Selector, w.tmpl.Labels)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
				break
			}
			if !ok {
				continue
			}
			matched++
			for _, ep := range pm.Spec.PodMetricsEndpoints {
				if ep.Port == nil {
					errs = append(errs, fmt.Errorf("%s: endpoint without a port name", id))
					continue
				}
				if _, ok := findPort(containerPorts(w), intstr.FromString(*ep.Port)); !ok {
					errs = append(errs, fmt.Errorf("%s: port %s is not a container port of %s", id, *ep.Port, w.id))
				}
			}
		}
		if matched == 0 {
			errs = append(errs, fmt.Errorf("%s: selects no pods", id))
		}
	}
	return errs
}

// natsRoute matches a cluster route to a StatefulSet pod: nats://nats-0.nats-headless:6222.
var natsRoute = regexp.MustCompile(`nats://([a-z0-9-]+)-([0-9]+)\.([a-z0-9-]+):6222`)

var natsDurationSetting = regexp.MustCompile(`(?m)^\s*(lame_duck_duration|lame_duck_grace_period):\s*"?([0-9a-z]+)"?\s*$`)

var natsPidFile = regexp.MustCompile(`(?m)^\s*pid_file:\s*"?([^"\s]+)"?\s*$`)

var natsStoreDir = regexp.MustCompile(`(?m)^\s*store_dir:\s*"?([^"\s]+)"?\s*$`)

func natsContainer(st *appsv1.StatefulSet) *corev1.Container {
	for i := range st.Spec.Template.Spec.Containers {
		ct := &st.Spec.Template.Spec.Containers[i]
		if strings.HasPrefix(ct.Image, "nats:") {
			return ct
		}
	}
	return nil
}

// checkNATS checks the NATS config against the StatefulSet: one route per
// pod when clustered, none when alone; JetStream on the volume; lame duck
// through the pid file inside the grace period.
func checkNATS(c *cluster) []error {
	var errs []error
	st := c.statefulSet("nats")
	if st == nil {
		return []error{fmt.Errorf("no StatefulSet nats")}
	}
	ct := natsContainer(st)
	if ct == nil {
		return []error{fmt.Errorf("StatefulSet/nats: no nats: container")}
	}
	var conf string
	for _, v := range st.Spec.Template.Spec.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		cm := c.configMap(st.Namespace, v.ConfigMap.Name)
		if cm == nil {
			errs = append(errs, fmt.Errorf("StatefulSet/nats: ConfigMap %s missing", v.ConfigMap.Name))
			continue
		}
		conf = cm.Data["nats.conf"]
	}
	if conf == "" {
		return append(errs, fmt.Errorf("StatefulSet/nats: no nats.conf in a ConfigMap volume"))
	}
	replicas := int32(1)
	if st.Spec.Replicas != nil {
		replicas = *st.Spec.Replicas
	}
	routes := map[int]bool{}
	for _, m := range natsRoute.FindAllStringSubmatch(conf, -1) {
		n, _ := strconv.Atoi(m[2])
		if m[1] != st.Name || m[3] != st.Spec.ServiceName || n >= int(replicas) {
			errs = append(errs, fmt.Errorf("nats.conf: route %s is not a pod of StatefulSet %s (%d replicas) under %s", m[0], st.Name, replicas, st.Spec.ServiceName))
		}
		routes[n] = true
	}
	clustered := strings.Contains(conf, "cluster {") || strings.Contains(conf, "cluster:")
	switch {
	case replicas == 1 && clustered:
		errs = append(errs, fmt.Errorf("nats.conf: a single server must not configure a cluster (JetStream would wait for a quorum)"))
	case replicas > 1 && len(routes) != int(replicas):
		errs = append(errs, fmt.Errorf("nats.conf: %d routes for %d replicas", len(routes), replicas))
	case replicas > 1 && replicas%2 == 0:
		errs = append(errs, fmt.Errorf("StatefulSet/nats: %d replicas; use an odd count for the JetStream quorum", replicas))
	}
	if !strings.Contains(conf, "jetstream") {
		errs = append(errs, fmt.Errorf("nats.conf: JetStream not enabled"))
	}
	mounts := map[string]string{}
	for _, vm := range ct.VolumeMounts {
		mounts[vm.MountPath] = vm.Name
	}
	if m := natsStoreDir.FindStringSubmatch(conf); m == nil {
		errs = append(errs, fmt.Errorf("nats.conf: no jetstream store_dir"))
	} else if vol := mounts[m[1]]; vol == "" || len(st.Spec.VolumeClaimTemplates) == 0 || st.Spec.VolumeClaimTemplates[0].Name != vol {
		errs = append(errs, fmt.Errorf("nats.conf: store_dir %s is not the volumeClaimTemplate's mount", m[1]))
	}
	var lameDuck time.Duration
	for _, m := range natsDurationSetting.FindAllStringSubmatch(conf, -1) {
		d, err := time.ParseDuration(m[2])
		if err != nil {
			errs = append(errs, fmt.Errorf("nats.conf: %s: %w", m[1], err))
		}
		lameDuck += d
	}
	if lameDuck == 0 {
		errs = append(errs, fmt.Errorf("nats.conf: lame_duck_duration not set"))
	}
	if g := st.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= lameDuck {
		errs = append(errs, fmt.Errorf("StatefulSet/nats: terminationGracePeriodSeconds must exceed lame duck duration + grace (%v)", lameDuck))
	}
	pid := natsPidFile.FindStringSubmatch(conf)
	if pid == nil {
		errs = append(errs, fmt.Errorf("nats.conf: no pid_file for the preStop signal"))
	} else {
		if ct.Lifecycle == nil || ct.Lifecycle.PreStop == nil || ct.Lifecycle.PreStop.Exec == nil ||
			!strings.Contains(strings.Join(ct.Lifecycle.PreStop.Exec.Command, " "), "ldm="+pid[1]) {
			errs = append(errs, fmt.Errorf("StatefulSet/nats: preStop must signal ldm=%s", pid[1]))
		}
		dir := pid[1][:strings.LastIndex(pid[1], "/")]
		if mounts[dir] == "" {
			errs = append(errs, fmt.Errorf("StatefulSet/nats: pid file dir %s is not a writable mount (root fs is read-only)", dir))
		}
	}
	return errs
}

// checkCassandra checks seeds name existing pods through the headless
// Service and the data volume is persistent.
func checkCassandra(c *cluster) []error {
	var errs []error
	st := c.statefulSet("cassandra")
	if st == nil {
		return []error{fmt.Errorf("no StatefulSet cassandra")}
	}
	if len(st.Spec.Template.Spec.Containers) != 1 {
		return []error{fmt.Errorf("StatefulSet/cassandra: want one container")}
	}
	ct := &st.Spec.Template.Spec.Containers[0]
	if !strings.HasPrefix(ct.Image, "cassandra:5.") {
		errs = append(errs, fmt.Errorf("StatefulSet/cassandra: image %s, want cassandra:5.x", ct.Image))
	}
	replicas := int32(1)
	if st.Spec.Replicas != nil {
		replicas = *st.Spec.Replicas
	}
	seeds, _ := envValue(ct, "CASSANDRA_SEEDS")
	if seeds == "" {
		errs = append(errs, fmt.Errorf("StatefulSet/cassandra: CASSANDRA_SEEDS not set"))
	}
	for _, s := range strings.Split(seeds, ",") {
		var n int
		var svc string
		if _, err := fmt.Sscanf(strings.Replace(s, ".", " ", 1), st.Name+"-%d %s", &n, &svc); err != nil || svc != st.Spec.ServiceName || n >= int(replicas) {
			errs = append(errs, fmt.Errorf("StatefulSet/cassandra: seed %q is not a pod of %s under %s", s, st.Name, st.Spec.ServiceName))
		}
	}
	found := false
	for _, vm := range ct.VolumeMounts {
		if vm.MountPath == "/var/lib/cassandra" {
			found = len(st.Spec.VolumeClaimTemplates) > 0 && st.Spec.VolumeClaimTemplates[0].Name == vm.Name
		}
	}
	if !found {
		errs = append(errs, fmt.Errorf("StatefulSet/cassandra: /var/lib/cassandra is not on the volumeClaimTemplate"))
	}
	if ct.ReadinessProbe == nil || ct.ReadinessProbe.Exec == nil ||
		!strings.Contains(strings.Join(ct.ReadinessProbe.Exec.Command, " "), "nodetool status") {
		errs = append(errs, fmt.Errorf("StatefulSet/cassandra: readiness should come from nodetool status"))
	}
	return errs
}

// replicationArgs parses the migration's --replication-factor N or
// --replication 'dc:N,...' into data centre -> factor ("" for simple).
func replicationArgs(args []string) (map[string]int, error) {
	out := map[string]int{}
	for i := 0; i < len(args); i++ {
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s has no value", args[i])
			}
			i++
			return args[i], nil
		}
		switch args[i] {
		case "--replication-factor":
			v, err := next()
			if err != nil {
				return nil, err
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, err
			}
			out[""] = n
		case "--replication":
			v, err := next()
			if err != nil {
				return nil, err
			}
			for _, part := range strings.Split(v, ",") {
				dc, f, ok := strings.Cut(part, ":")
				n, err := strconv.Atoi(f)
				if !ok || err != nil || dc == "" {
					return nil, fmt.Errorf("bad --replication %q", v)
				}
				out[dc] = n
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("neither --replication nor --replication-factor")
	}
	return out, nil
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// checkMigration: the Job reaches Cassandra, creates keyspace chat, and its
// replication fits the ring it runs against.
func checkMigration(c *cluster) []error {
	var errs []error
	jobs := 0
	st := c.statefulSet("cassandra")
	for _, j := range c.jobs {
		for i := range j.Spec.Template.Spec.Containers {
			ct := &j.Spec.Template.Spec.Containers[i]
			if chatCommand(ct) != "migrate" {
				continue
			}
			jobs++
			id := "Job/" + j.Name
			if rp := j.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever {
				errs = append(errs, fmt.Errorf("%s: restartPolicy %q", id, rp))
			}
			if j.Spec.BackoffLimit == nil || *j.Spec.BackoffLimit < 5 {
				errs = append(errs, fmt.Errorf("%s: backoffLimit should allow retries while Cassandra starts", id))
			}
			errs = append(errs, c.checkCassandraHosts(j.Namespace, id, flagValue(ct.Args, "--cassandra"))...)
			if ks := flagValue(ct.Args, "--keyspace"); ks != "chat" {
				errs = append(errs, fmt.Errorf("%s: --keyspace %q, want chat", id, ks))
			}
			repl, err := replicationArgs(ct.Args)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
				continue
			}
			if st == nil || len(st.Spec.Template.Spec.Containers) == 0 {
				continue
			}
			nodes := 1
			if st.Spec.Replicas != nil {
				nodes = int(*st.Spec.Replicas)
			}
			dc, _ := envValue(&st.Spec.Template.Spec.Containers[0], "CASSANDRA_DC")
			for name, f := range repl {
				if name != "" && name != dc {
					errs = append(errs, fmt.Errorf("%s: replication names data centre %q; Cassandra's is %q", id, name, dc))
				}
				if f < 1 || f > nodes {
					errs = append(errs, fmt.Errorf("%s: replication factor %d with %d Cassandra nodes", id, f, nodes))
				}
			}
		}
	}
	if jobs != 1 {
		errs = append(errs, fmt.Errorf("found %d migration Jobs, want 1", jobs))
	}
	return errs
}

// sortedKeys is for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
