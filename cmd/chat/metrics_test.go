package main

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// The dashboards and alerts under k8s/ may only name metrics the code
// registers. k8s/metrics_known_test.go keeps the list they are checked
// against; this test holds that list to what chat dev really exports, in
// both directions, so a renamed metric fails here.
func TestMetricsMatchK8sList(t *testing.T) {
	src, err := os.ReadFile("../../k8s/metrics_known_test.go")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`"(chat_[a-z0-9_]+)":\s*\{`).FindAllStringSubmatch(string(src), -1) {
		listed[m[1]] = true
	}
	if len(listed) < 10 {
		t.Fatalf("found only %d metric names in k8s/metrics_known_test.go: parser out of date?", len(listed))
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := startDev(ctx, devOptions{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Data: t.TempDir(), JWTSecret: "metrics-test-secret-0123456789", Drain: time.Second}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	resp, err := http.Get(d.MetricsURL + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	exported := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" && strings.HasPrefix(f[2], "chat_") {
			exported[f[2]] = true
		}
	}
	var missing, unlisted []string
	for name := range listed {
		if !exported[name] {
			missing = append(missing, name)
		}
	}
	for name := range exported {
		if !listed[name] {
			unlisted = append(unlisted, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(unlisted)
	if len(missing) > 0 {
		t.Errorf("k8s lists metrics the code does not export: %v", missing)
	}
	if len(unlisted) > 0 {
		t.Errorf("the code exports metrics k8s does not list (add them to k8s/metrics_known_test.go): %v", unlisted)
	}
}
