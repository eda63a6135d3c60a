package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chatcluster/chat/router"
	"github.com/chatcluster/chat/store/push"
	"github.com/chatcluster/chat/store/storeclient"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

func init() { commands["push"] = runPush }

// pushFlags are the flags chat push and chat dev share.
type pushFlags struct {
	gatewayURL   *string
	vapidKey     *string
	vapidSubject *string
	delay        *time.Duration
}

func addPushFlags(fs *flag.FlagSet, prefix string) pushFlags {
	return pushFlags{
		gatewayURL:   fs.String(prefix+"gateway-url", "", "push gateway notify URL (Matrix push gateway API, e.g. https://sygnal.example/_matrix/push/v1/notify); empty: gateway devices are not notified"),
		vapidKey:     fs.String("vapid-private-key", "", "VAPID private key for Web Push, base64url (chat push keys makes one); empty: Web Push devices are not notified"),
		vapidSubject: fs.String("vapid-subject", push.DefaultVAPIDSubject, "VAPID contact (mailto: or https: URL) push services see"),
		delay:        fs.Duration(prefix+"delay", push.DefaultDelay, "how long after a message an offline member who has not read it is notified"),
	}
}

// config turns the flags into a push.Config.
func (f pushFlags) config() (push.Config, error) {
	cfg := push.Config{GatewayURL: *f.gatewayURL, VAPIDSubject: *f.vapidSubject, Delay: *f.delay}
	if *f.vapidKey != "" {
		k, err := push.ParseVAPIDPrivate(*f.vapidKey)
		if err != nil {
			return cfg, err
		}
		cfg.VAPID = &k
	}
	return cfg, nil
}

// runPush runs the push notifier: one durable consumer on the message
// stream, shared by its replicas.
func runPush(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "keys" {
		return pushKeys(args[1:])
	}
	fs := flag.NewFlagSet("chat push", flag.ContinueOnError)
	addr := fs.String("addr", ":8082", "address of /healthz and /readyz")
	metricsAddr, pprofOn := metricsFlags(fs, defaultPushMetrics)
	natsF := addNATSFlags(fs)
	pf := addPushFlags(fs, "")
	maxAttempts := fs.Int("max-attempts", push.DefaultMaxAttempts, "tries of one notification before it is dead-lettered")
	backoffBase := fs.Duration("backoff-base", push.DefaultBackoffBase, "first retry waits up to this; doubles per try")
	backoffMax := fs.Duration("backoff-max", push.DefaultBackoffMax, "longest wait between tries")
	httpTimeout := fs.Duration("http-timeout", push.DefaultHTTPTimeout, "bound of one send")
	workers := fs.Int("workers", push.DefaultWorkers, "messages decided and sent in parallel")
	replicas := fs.Int("stream-replicas", 1, "JetStream replicas of the stream and the sent-notifications bucket (3 in a cluster)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := pf.config()
	if err != nil {
		return err
	}
	cfg.MaxAttempts, cfg.BackoffBase, cfg.BackoffMax = *maxAttempts, *backoffBase, *backoffMax
	cfg.HTTPTimeout, cfg.Workers, cfg.Replicas = *httpTimeout, *workers, *replicas
	log, err := newLogger(*logLevel, false)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr
	cfg.Log = log

	reg := newRegistry()
	var svc atomic.Pointer[push.Service]
	nc, err := connectNATS(natsF, "push", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	health, err := serveHTTP(*addr, healthHandler(func() bool { return svc.Load() != nil && nc.IsConnected() }), log)
	if err != nil {
		return err
	}
	defer health.Close()
	metrics, err := serveHTTP(*metricsAddr, metricsHandler(reg, *pprofOn), log)
	if err != nil {
		return err
	}
	defer metrics.Close()
	if err := waitConnected(ctx, nc); err != nil {
		return err
	}
	p, err := startPush(ctx, nc, reg, cfg)
	if err != nil {
		return err
	}
	svc.Store(p.svc)
	log.Info("push running", zap.String("health", health.URL()), zap.String("metrics", metrics.URL()), zap.Bool("gateway", cfg.GatewayURL != ""), zap.Bool("webpush", cfg.VAPID != nil))
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return p.close(sctx)
}

// pushProcess is a push service with the presence it reads.
type pushProcess struct {
	svc      *push.Service
	presence *router.Presence
}

func startPush(ctx context.Context, nc *nats.Conn, reg prometheus.Registerer, cfg push.Config) (*pushProcess, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if _, err := router.EnsureStream(ctx, js, router.StreamConfig{Replicas: cfg.Replicas}); err != nil {
		return nil, err
	}
	// Presence as the gateways keep it: this process joins with no users
	// of its own and learns who is online anywhere.
	pres, err := router.NewPresence(ctx, nc, router.PresenceConfig{Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	svc, err := push.Start(ctx, nc, storeclient.NewClient(nc, storeclient.ClientConfig{}), pres, reg, cfg)
	if err != nil {
		pres.Close()
		return nil, err
	}
	return &pushProcess{svc: svc, presence: pres}, nil
}

// close stops the service, then presence. Safe twice and on nil.
func (p *pushProcess) close(ctx context.Context) error {
	if p == nil {
		return nil
	}
	err := p.svc.Shutdown(ctx)
	p.presence.Close()
	return err
}

// pushKeys prints a new VAPID key pair: the private key for
// --vapid-private-key, the public key for the gateway's --vapid-public-key
// (browsers subscribe with it).
func pushKeys(args []string) error {
	fs := flag.NewFlagSet("chat push keys", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	k, err := push.GenerateVAPIDKeys()
	if err != nil {
		return err
	}
	priv, err := k.EncodeVAPIDPrivate()
	if err != nil {
		return err
	}
	fmt.Printf("CHAT_VAPID_PRIVATE_KEY=%s\nCHAT_VAPID_PUBLIC_KEY=%s\n", priv, k.Public)
	return nil
}

// devVAPID is chat dev's VAPID key: the flag's, or one made once and kept
// under the data directory, so browsers' subscriptions survive a restart.
func devVAPID(data, flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	path := filepath.Join(data, "vapid-private-key")
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
	}
	k, err := push.GenerateVAPIDKeys()
	if err != nil {
		return "", err
	}
	priv, err := k.EncodeVAPIDPrivate()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(priv+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("vapid key: %w", err)
	}
	return priv, nil
}
