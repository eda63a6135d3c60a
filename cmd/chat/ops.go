package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// newRegistry is a metrics registry with the Go runtime and process
// collectors every process exports.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Default metrics addresses: loopback, one port per command so that a
// gateway, a store and a push process can run on one machine. In a pod
// the manifests set CHAT_METRICS_ADDR=:9090, for Prometheus to reach it.
const (
	defaultGatewayMetrics = "127.0.0.1:9090"
	defaultStoreMetrics   = "127.0.0.1:9091"
	defaultPushMetrics    = "127.0.0.1:9092"
	// chat dev: a free loopback port, printed at start (several dev
	// processes, the browser tests', run at once).
	defaultDevMetrics = "127.0.0.1:0"
)

// metricsFlags registers --metrics-addr (default def) and --pprof on fs.
func metricsFlags(fs *flag.FlagSet, def string) (addr *string, pprofOn *bool) {
	addr = fs.String("metrics-addr", def, "address of /metrics (and /debug/pprof/ with --pprof), apart from the public port: keep it off the internet; empty: not served")
	pprofOn = fs.Bool("pprof", false, "serve Go's profiler under /debug/pprof/ on --metrics-addr")
	return addr, pprofOn
}

// healthHandler serves /healthz and /readyz for processes that have no
// other HTTP side (store, push).
func healthHandler(ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"status":"ok"}`) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"status":"unavailable"}`)
			return
		}
		_, _ = io.WriteString(w, `{"status":"ready"}`)
	})
	return mux
}

// metricsHandler serves /metrics from g and, when pprofOn, Go's profiler.
func metricsHandler(g prometheus.Gatherer, pprofOn bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// httpSide is a small HTTP server of its own goroutine, which Close waits
// for.
type httpSide struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// serveHTTP listens on addr and serves h there; "" serves nothing (nil,
// which Close and URL accept).
func serveHTTP(addr string, h http.Handler, log *zap.Logger) (*httpSide, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s := &httpSide{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", zap.String("addr", addr), zap.Error(err))
		}
	}()
	return s, nil
}

// URL is http://host:port/ of the listener ("" on nil).
func (s *httpSide) URL() string {
	if s == nil {
		return ""
	}
	return "http://" + displayAddr(s.ln.Addr()) + "/"
}

// Close stops the server and waits for its goroutine. Safe on nil and
// twice.
func (s *httpSide) Close() {
	if s == nil {
		return
	}
	_ = s.srv.Close()
	<-s.done
}
