package k8s

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// peer is one end of a connection: a pod's labels and namespace (and its
// container ports, for named ports when it is the target).
type peer struct {
	name      string
	namespace string
	labels    map[string]string
	ports     []corev1.ContainerPort
}

// nsLabels are the labels Kubernetes puts on every namespace.
func nsLabels(ns string) map[string]string {
	return map[string]string{"kubernetes.io/metadata.name": ns}
}

func selects(sel *metav1.LabelSelector, l map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(l))
}

// peerMatches evaluates one NetworkPolicyPeer of a policy in namespace
// polNS against p (ipBlocks match no pod: pods have cluster addresses).
func peerMatches(np networkingv1.NetworkPolicyPeer, polNS string, p peer) bool {
	switch {
	case np.IPBlock != nil:
		return false
	case np.NamespaceSelector != nil:
		if !selects(np.NamespaceSelector, nsLabels(p.namespace)) {
			return false
		}
		return np.PodSelector == nil || selects(np.PodSelector, p.labels)
	case np.PodSelector != nil:
		return p.namespace == polNS && selects(np.PodSelector, p.labels)
	}
	return false
}

// portMatches: a rule's ports against a numeric port of target (a named
// port is resolved against target's container ports).
func portMatches(ports []networkingv1.NetworkPolicyPort, target peer, port int32) bool {
	if len(ports) == 0 {
		return true
	}
	for _, pp := range ports {
		if pp.Protocol != nil && *pp.Protocol != corev1.ProtocolTCP {
			continue
		}
		if pp.Port == nil {
			return true
		}
		if pp.Port.Type == intstr.Int && pp.Port.IntVal == port {
			return true
		}
		if pp.Port.Type == intstr.String {
			if cp, ok := findPort(target.ports, *pp.Port); ok && cp.ContainerPort == port {
				return true
			}
		}
	}
	return false
}

// anyPeer: a rule's peers match p (no peers: every peer).
func anyPeer(peers []networkingv1.NetworkPolicyPeer, polNS string, p peer) bool {
	if len(peers) == 0 {
		return true
	}
	for _, np := range peers {
		if peerMatches(np, polNS, p) {
			return true
		}
	}
	return false
}

func hasType(p *networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
	for _, pt := range p.Spec.PolicyTypes {
		if pt == t {
			return true
		}
	}
	return false
}

// allowed reports whether from may open a TCP connection to to:port under
// the policies: from's egress and to's ingress must both allow it (a pod no
// policy of that direction selects is open in that direction).
func allowed(pols []*networkingv1.NetworkPolicy, from, to peer, port int32) bool {
	egressOK, egressSelected := false, false
	ingressOK, ingressSelected := false, false
	for _, p := range pols {
		if p.Namespace == from.namespace && hasType(p, networkingv1.PolicyTypeEgress) && selects(&p.Spec.PodSelector, from.labels) {
			egressSelected = true
			for _, r := range p.Spec.Egress {
				if anyPeer(r.To, p.Namespace, to) && portMatches(r.Ports, to, port) {
					egressOK = true
				}
			}
		}
		if p.Namespace == to.namespace && hasType(p, networkingv1.PolicyTypeIngress) && selects(&p.Spec.PodSelector, to.labels) {
			ingressSelected = true
			for _, r := range p.Spec.Ingress {
				if anyPeer(r.From, p.Namespace, from) && portMatches(r.Ports, to, port) {
					ingressOK = true
				}
			}
		}
	}
	return (egressOK || !egressSelected) && (ingressOK || !ingressSelected)
}

// TestNetworkPolicies evaluates the policies of every overlay as a CNI
// would, for the connections the system makes and some it must not.
func TestNetworkPolicies(t *testing.T) {
	for _, overlay := range []string{"dev", "prod", "prod-connections-hpa", "prod-gateway-api"} {
		t.Run(overlay, func(t *testing.T) {
			c, err := loadCluster(overlay)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkNetworkPolicies(c); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// checkNetworkPolicies is the reachability table, as one error.
func checkNetworkPolicies(c *cluster) error {
	pods := map[string]peer{}
	for _, w := range c.workloads() {
		p := peer{name: w.name, namespace: w.namespace, labels: w.tmpl.Labels}
		for _, ct := range w.tmpl.Spec.Containers {
			p.ports = append(p.ports, ct.Ports...)
		}
		pods[w.name] = p
	}
	for _, n := range []string{"chat-gateway", "chat-store", "chat-push", "chat-migrate", "nats", "cassandra"} {
		if _, ok := pods[n]; !ok {
			return fmt.Errorf("no workload %s", n)
		}
	}
	ns := pods["nats"].namespace
	ingress := peer{name: "ingress-nginx", namespace: "ingress-nginx", labels: map[string]string{"app.kubernetes.io/name": "ingress-nginx"}}
	prom := peer{name: "prometheus", namespace: "monitoring", labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}
	stranger := peer{name: "a pod of another app, same namespace", namespace: ns, labels: map[string]string{"app": "other"}}
	elsewhere := peer{name: "a pod in another namespace", namespace: "default", labels: map[string]string{"app.kubernetes.io/name": "chat", "app.kubernetes.io/component": "gateway"}}
	dns := peer{name: "kube-dns", namespace: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}}
	gw, st, push, mig, nats, cass := pods["chat-gateway"], pods["chat-store"], pods["chat-push"], pods["chat-migrate"], pods["nats"], pods["cassandra"]
	cases := []struct {
		from, to peer
		port     int32
		want     bool
	}{
		{ingress, gw, 8080, true},
		{ingress, gw, 9090, false}, // metrics never through the ingress
		{prom, gw, 9090, true},
		{prom, st, 9090, true},
		{prom, push, 9090, true},
		{prom, nats, 7777, true},
		{prom, gw, 8080, false},
		{gw, nats, 4222, true},
		{st, nats, 4222, true},
		{push, nats, 4222, true},
		{st, cass, 9042, true},
		{mig, cass, 9042, true},
		{nats, nats, 6222, true},
		{cass, cass, 7000, true},
		{gw, dns, 53, true},
		{gw, cass, 9042, false}, // Cassandra: the store only
		{push, cass, 9042, false},
		{stranger, nats, 4222, false}, // NATS: chat pods only
		{elsewhere, nats, 4222, false},
		{stranger, cass, 9042, false},
		{stranger, gw, 8080, false},
		{stranger, gw, 9090, false},
		{stranger, st, 9090, false},
		{gw, st, 9090, false},
		{gw, nats, 8222, false}, // the NATS monitoring port: nobody
		{mig, nats, 4222, false},
		{nats, gw, 8080, false},
		{ingress, nats, 4222, false},
	}
	var errs []error
	for _, tc := range cases {
		if got := allowed(c.netpols, tc.from, tc.to, tc.port); got != tc.want {
			errs = append(errs, fmt.Errorf("%s -> %s:%d allowed=%v, want %v", tc.from.name, tc.to.name, tc.port, got, tc.want))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%v", errs)
	}
	return nil
}

// Without the policies everything is open: the table must notice.
func TestNetworkPolicyTableCatchesOpenCluster(t *testing.T) {
	c, err := loadCluster("prod")
	if err != nil {
		t.Fatal(err)
	}
	c.netpols = nil
	if checkNetworkPolicies(c) == nil {
		t.Fatal("no policies, and the reachability table passed")
	}
	c, err = loadCluster("prod")
	if err != nil {
		t.Fatal(err)
	}
	// Cassandra opened to every chat pod: the gateway reaches it.
	for _, p := range c.netpols {
		if p.Name == "cassandra" {
			p.Spec.Ingress[0].From[0].PodSelector.MatchExpressions[1].Values = []string{"store", "migrate", "gateway"}
		}
	}
	for _, p := range c.netpols {
		if p.Name == "chat-gateway" {
			p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{})
		}
	}
	if err := checkNetworkPolicies(c); err == nil {
		t.Fatal("the gateway reaches Cassandra, and the table passed")
	}
}
