// Package k8s holds the deployment of the chat cluster: a kustomize base and
// overlays, the Grafana dashboard, the Prometheus alert rules and the
// Dockerfile. It has no Go code of its own; it is a Go module so that its
// tests (go test in this folder) can build every overlay with kustomize,
// decode every object strictly into the Kubernetes, Prometheus Operator and
// Gateway API types, check what a schema cannot (probes, hardening, labels
// against selectors, ports, replica counts), and parse every PromQL
// expression, without adding those dependencies to the root module.
package k8s
