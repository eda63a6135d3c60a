package k8s

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// overlayDirs lists the overlays under overlays/, so a new overlay is tested
// (and must be given expectations) as soon as it exists.
func overlayDirs() ([]string, error) {
	entries, err := os.ReadDir("overlays")
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	sort.Strings(dirs)
	if len(dirs) == 0 {
		return nil, errors.New("no overlays found")
	}
	return dirs, nil
}

// buildKustomization runs kustomize (as `kubectl apply -k` would) on dir and
// returns each resulting object as YAML.
func buildKustomization(dir string) ([][]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var out [][]byte
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		out = append(out, y)
	}
	return out, nil
}

// newStrictDecoder decodes YAML into the registered Go types, failing on
// unknown or duplicated fields and on kinds nobody registered.
func newStrictDecoder() (runtime.Decoder, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme,
		appsv1.AddToScheme,
		batchv1.AddToScheme,
		autoscalingv2.AddToScheme,
		policyv1.AddToScheme,
		networkingv1.AddToScheme,
		monitoringv1.AddToScheme,
		gatewayv1.Install,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, s, s,
		kjson.SerializerOptions{Yaml: true, Strict: true}), nil
}

// cluster is what one overlay would create, decoded into typed objects.
type cluster struct {
	overlay         string
	deployments     []*appsv1.Deployment
	statefulSets    []*appsv1.StatefulSet
	jobs            []*batchv1.Job
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	ingresses       []*networkingv1.Ingress
	netpols         []*networkingv1.NetworkPolicy
	httpRoutes      []*gatewayv1.HTTPRoute
	serviceMonitors []*monitoringv1.ServiceMonitor
	podMonitors     []*monitoringv1.PodMonitor
	rules           []*monitoringv1.PrometheusRule
	// all holds every object, for checks common to all kinds.
	all []runtime.Object
}

// decodeCluster strictly decodes every YAML document of an overlay.
func decodeCluster(overlay string, docs [][]byte) (*cluster, error) {
	dec, err := newStrictDecoder()
	if err != nil {
		return nil, err
	}
	c := &cluster{overlay: overlay}
	var errs []error
	for _, d := range docs {
		obj, _, err := dec.Decode(d, nil, nil)
		if err != nil {
			// A strict-decoding error comes back with a usable object; it is
			// still a failure: the field would be dropped by the API server.
			errs = append(errs, fmt.Errorf("decode: %w\n%s", err, d))
			continue
		}
		if err := c.add(obj); err != nil {
			errs = append(errs, err)
		}
	}
	return c, errors.Join(errs...)
}

func (c *cluster) add(obj runtime.Object) error {
	c.all = append(c.all, obj)
	switch o := obj.(type) {
	case *appsv1.Deployment:
		c.deployments = append(c.deployments, o)
	case *appsv1.StatefulSet:
		c.statefulSets = append(c.statefulSets, o)
	case *batchv1.Job:
		c.jobs = append(c.jobs, o)
	case *corev1.Service:
		c.services = append(c.services, o)
	case *corev1.ConfigMap:
		c.configMaps = append(c.configMaps, o)
	case *policyv1.PodDisruptionBudget:
		c.pdbs = append(c.pdbs, o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		c.hpas = append(c.hpas, o)
	case *networkingv1.Ingress:
		c.ingresses = append(c.ingresses, o)
	case *networkingv1.NetworkPolicy:
		c.netpols = append(c.netpols, o)
	case *gatewayv1.HTTPRoute:
		c.httpRoutes = append(c.httpRoutes, o)
	case *monitoringv1.ServiceMonitor:
		c.serviceMonitors = append(c.serviceMonitors, o)
	case *monitoringv1.PodMonitor:
		c.podMonitors = append(c.podMonitors, o)
	case *monitoringv1.PrometheusRule:
		c.rules = append(c.rules, o)
	default:
		return fmt.Errorf("no check knows kind %T: add it to cluster.add", obj)
	}
	return nil
}

// deepCopy returns an independent copy, for tests that break one.
func (c *cluster) deepCopy() (*cluster, error) {
	cp := &cluster{overlay: c.overlay}
	for _, obj := range c.all {
		if err := cp.add(obj.DeepCopyObject()); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

// workload is a pod template and where it came from.
type workload struct {
	id        string // Kind/name
	kind      string
	name      string
	namespace string
	replicas  *int32 // nil for Jobs and for Deployments left to an HPA
	tmpl      *corev1.PodTemplateSpec
}

func (c *cluster) workloads() []workload {
	var ws []workload
	for _, d := range c.deployments {
		ws = append(ws, workload{"Deployment/" + d.Name, "Deployment", d.Name, d.Namespace, d.Spec.Replicas, &d.Spec.Template})
	}
	for _, s := range c.statefulSets {
		ws = append(ws, workload{"StatefulSet/" + s.Name, "StatefulSet", s.Name, s.Namespace, s.Spec.Replicas, &s.Spec.Template})
	}
	for _, j := range c.jobs {
		ws = append(ws, workload{"Job/" + j.Name, "Job", j.Name, j.Namespace, nil, &j.Spec.Template})
	}
	return ws
}

func (c *cluster) service(namespace, name string) *corev1.Service {
	for _, s := range c.services {
		if s.Namespace == namespace && s.Name == name {
			return s
		}
	}
	return nil
}

func (c *cluster) deployment(namespace, name string) *appsv1.Deployment {
	for _, d := range c.deployments {
		if d.Namespace == namespace && d.Name == name {
			return d
		}
	}
	return nil
}

func (c *cluster) statefulSet(name string) *appsv1.StatefulSet {
	for _, s := range c.statefulSets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (c *cluster) configMap(namespace, name string) *corev1.ConfigMap {
	for _, cm := range c.configMaps {
		if cm.Namespace == namespace && cm.Name == name {
			return cm
		}
	}
	return nil
}

// builds caches kustomize's output per overlay: tests that break a copy
// of an overlay decode it afresh but need not rebuild it.
var builds struct {
	sync.Mutex
	docs map[string][][]byte
}

// loadCluster builds (once) and decodes (each time) one overlay.
func loadCluster(overlay string) (*cluster, error) {
	builds.Lock()
	docs, ok := builds.docs[overlay]
	builds.Unlock()
	if !ok {
		var err error
		docs, err = buildKustomization(filepath.Join("overlays", overlay))
		if err != nil {
			return nil, err
		}
		builds.Lock()
		if builds.docs == nil {
			builds.docs = map[string][][]byte{}
		}
		builds.docs[overlay] = docs
		builds.Unlock()
	}
	return decodeCluster(overlay, docs)
}
