#!/usr/bin/env bash
# Validates the Kubernetes manifests, dashboard and alert rules: builds every
# overlay with kustomize's Go API, decodes each object strictly into the
# Kubernetes / Prometheus Operator / Gateway API types, checks probes,
# hardening, selectors, ports and replica counts, and parses every PromQL
# expression. Run from anywhere; the root test command calls it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
go vet ./...
go test -race "$@" ./...
