package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/gateway"
	"github.com/chatcluster/chat/router"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/bolt"
	"github.com/chatcluster/chat/web"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// devOptions are chat dev's flags.
type devOptions struct {
	GroupLimits groupLimits   // the store's per-user group limits
	Addr        string        // where the gateway listens; default 127.0.0.1:8080
	Data        string        // NATS, store and secret live here; default ./chat-data
	JWTSecret   string        // default: made once and kept in Data
	LogLevel    string        // debug, info, warn, error; default info
	Drain       time.Duration // SIGTERM's drain period; default 10s
	Pprof       bool          // serve /debug/pprof/ on MetricsAddr
	// MetricsAddr serves /metrics (and the profiler); "" serves neither.
	// The flag's default is a free loopback port (defaultDevMetrics).
	MetricsAddr string
	// Origins are the other origins whose pages may use the API and the
	// WebSocket (gateway.Config.AllowedOrigins), comma separated; default
	// none: same origin only.
	Origins string
	Push    devPushOptions
	// AccessTTL and SessionTTL: gateway.Config.TokenTTL and SessionTTL
	// (defaults 15m and 30 days).
	AccessTTL, SessionTTL time.Duration
	// EditWindow is how long a sender may edit a message
	// (gateway.Config.EditWindow); default 48h (0 here: the gateway's default).
	EditWindow time.Duration
	// HelloConversations is how many conversations hello lists
	// (gateway.Config.HelloConversations); default 1000.
	HelloConversations int
	// Limits are the throttles and per-user limits (limits.go); zero
	// values take the gateway's defaults, and chat dev exempts loopback
	// from the throttles unless Limits.ThrottleExempt says otherwise.
	Limits limitOptions
	// MaxReassembly bounds the bytes held for unfinished client messages
	// (gateway.Config.MaxReassembly); default 64 MiB (0 here: the gateway's
	// default).
	MaxReassembly int
}

func runDev(ctx context.Context, args []string) error {
	var o devOptions
	fs := flag.NewFlagSet("chat dev", flag.ContinueOnError)
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:8080", "address to serve HTTP and WebSocket on")
	fs.StringVar(&o.Data, "data", "chat-data", "directory for NATS JetStream, the store and the JWT secret")
	fs.StringVar(&o.JWTSecret, "jwt-secret", "", "secret that signs tokens (default: generated and kept in --data)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&o.Drain, "drain", 10*time.Second, "how long SIGTERM takes to close all connections")
	metricsAddr, pprofOn := metricsFlags(fs, defaultDevMetrics)
	fs.StringVar(&o.Origins, "allowed-origins", "", originsUsage)
	o.Push.flags = addPushFlags(fs, "push-")
	fs.DurationVar(&o.AccessTTL, "access-ttl", 15*time.Minute, "how long an access token lasts (clients renew it with their refresh token)")
	fs.DurationVar(&o.SessionTTL, "session-ttl", 30*24*time.Hour, "how long a session lasts from login, however often it is refreshed")
	editWindowFlag(fs, &o.EditWindow)
	helloConversationsFlag(fs, &o.HelloConversations)
	addLimitFlags(fs, &o.Limits, devThrottleExempt)
	maxReassemblyFlag(fs, &o.MaxReassembly)
	groupLimitFlags(fs, &o.GroupLimits)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	o.MetricsAddr, o.Pprof = *metricsAddr, *pprofOn
	log, err := newLogger(o.LogLevel, true)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr
	d, err := startDev(ctx, o, log)
	if err != nil {
		return err
	}
	fmt.Printf("chat dev: open %s\n", d.URL)
	if d.MetricsURL != "" {
		fmt.Printf("chat dev: metrics at %smetrics\n", d.MetricsURL)
	}
	<-ctx.Done()
	log.Info("draining", zap.Duration("drain", o.Drain))
	dctx, cancel := context.WithTimeout(context.Background(), o.Drain+5*time.Second)
	defer cancel()
	if err := d.gw.Drain(dctx); err != nil {
		log.Warn("drain incomplete", zap.Error(err))
	}
	return d.Close(dctx)
}

// devServer is the whole system in one process.
type devServer struct {
	URL string
	// MetricsURL is where /metrics is served ("" when it is not).
	MetricsURL string

	ns      *server.Server
	nc      *nats.Conn
	backend *bolt.Backend
	store   *store.Process
	gw      *gateway.Process
	push    *pushProcess
	metrics *httpSide
	ln      net.Listener
	log     *zap.Logger

	wg   sync.WaitGroup
	once sync.Once
	err  error
}

func startDev(ctx context.Context, o devOptions, log *zap.Logger) (_ *devServer, err error) {
	if err := o.Limits.apply(&gateway.Config{}, devThrottleExempt); err != nil {
		return nil, err // before anything is made
	}
	if err := os.MkdirAll(o.Data, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	secret, err := devSecret(o)
	if err != nil {
		return nil, err
	}
	d := &devServer{log: log}
	defer func() {
		if err != nil {
			_ = d.Close(context.Background())
		}
	}()

	// NATS with JetStream, in process: no port to collide with.
	d.ns, err = server.NewServer(&server.Options{
		ServerName: "chat-dev", DontListen: true, JetStream: true,
		StoreDir: filepath.Join(o.Data, "nats"), NoSigs: true, NoLog: true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	d.ns.Start()
	if !d.ns.ReadyForConnections(30 * time.Second) {
		return nil, errors.New("nats: not ready in 30s")
	}
	d.nc, err = nats.Connect("", nats.InProcessServer(d.ns), nats.Name("chat-dev"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("nats connect: %w", err)
	}
	js, err := jetstream.New(d.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	// The stream before the store, so its consumer starts at once.
	if _, err := router.EnsureStream(ctx, js, router.StreamConfig{Replicas: 1}); err != nil {
		return nil, err
	}

	reg := newRegistry()
	d.metrics, err = serveHTTP(o.MetricsAddr, metricsHandler(reg, o.Pprof), log)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	d.MetricsURL = d.metrics.URL()

	// The store: embedded backend, served over NATS exactly as in the cluster.
	d.backend, err = bolt.Open(filepath.Join(o.Data, "store.db"), bolt.Options{})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	d.store, err = store.Start(ctx, store.Options{
		NATS: d.nc, JetStream: js, Backend: d.backend, Registry: reg, Log: log.Named("store"),
		Config: devStoreConfig(o.GroupLimits),
	})
	if err != nil {
		return nil, err
	}

	// Push notifications (devpush.go): before the gateway, which hands
	// browsers the Web Push key.
	vapidPub, err := d.startPush(ctx, o, reg)
	if err != nil {
		return nil, err
	}

	cfg := gateway.Config{JWTSecret: secret, Drain: o.Drain, Web: web.Handler(), ReadyCheck: d.store.Ready,
		AllowedOrigins: splitList(o.Origins), VAPIDPublicKey: vapidPub, TokenTTL: o.AccessTTL, SessionTTL: o.SessionTTL,
		EditWindow: o.EditWindow, HelloConversations: o.HelloConversations, MaxReassembly: o.MaxReassembly}
	if err := o.Limits.apply(&cfg, devThrottleExempt); err != nil {
		return nil, err
	}
	d.gw, err = gateway.Start(ctx, gateway.Options{
		Config: cfg,
		NATS:   d.nc, Registry: reg, Log: log.Named("gateway"),
	})
	if err != nil {
		return nil, err
	}
	d.ln, err = net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	d.URL = "http://" + displayAddr(d.ln.Addr()) + "/"
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.gw.Serve(d.ln); err != nil && !errors.Is(err, gateway.ErrServerClosed) {
			log.Error("serve", zap.Error(err))
		}
	}()
	return d, nil
}

// displayAddr is an address a browser can open (0.0.0.0 is not one).
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// devSecret is the flag's secret, or one made once and kept under Data so
// that tokens survive a restart.
func devSecret(o devOptions) ([]byte, error) {
	if o.JWTSecret != "" {
		return []byte(o.JWTSecret), nil
	}
	path := filepath.Join(o.Data, "jwt-secret")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("jwt secret: %w", err)
	}
	return []byte(secret), nil
}

// Close stops everything, last started first. Safe twice.
func (d *devServer) Close(ctx context.Context) error {
	d.once.Do(func() {
		if d.gw != nil {
			d.err = d.gw.Shutdown(ctx)
		}
		if d.ln != nil {
			_ = d.ln.Close()
		}
		if err := d.push.close(ctx); err != nil && d.err == nil {
			d.err = err
		}
		if d.store != nil {
			if err := d.store.Shutdown(ctx); err != nil && d.err == nil {
				d.err = err
			}
		}
		d.wg.Wait()
		d.metrics.Close()
		if d.backend != nil {
			_ = d.backend.Close()
		}
		if d.nc != nil {
			d.nc.Close()
		}
		if d.ns != nil {
			d.ns.Shutdown()
			d.ns.WaitForShutdown()
		}
	})
	return d.err
}

// devStoreConfig is the embedded store's configuration. Zero limits (a
// devOptions made in code, not by flags) take the store's defaults.
func devStoreConfig(l groupLimits) store.ServiceConfig {
	c := store.ServiceConfig{Stream: chat.StreamName, Durable: chat.StoreDurable, AckWait: storeAckWait}
	l.apply(&c)
	return c
}
