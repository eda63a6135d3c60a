package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/chatcluster/chat/gateway"
	"github.com/chatcluster/chat/web"
	"go.uber.org/zap"
)

func init() { commands["gateway"] = runGateway }

// runGateway runs one stateless gateway of the cluster. It needs only NATS:
// its node ID for message IDs is leased there (router.AcquireNodeID), so
// every pod gets a distinct one without configuration.
func runGateway(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chat gateway", flag.ContinueOnError)
	addr := fs.String("addr", ":8080", "address to serve HTTP and WebSocket on")
	natsF := addNATSFlags(fs)
	secret := fs.String("jwt-secret", "", "secret that signs tokens (required; the same on every gateway)")
	drain := fs.Duration("drain", 10*time.Second, "how long SIGTERM takes to close all connections")
	replicas := fs.Int("stream-replicas", 1, "JetStream replicas of the message stream (3 in a cluster)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	metricsAddr, pprofOn := metricsFlags(fs, defaultGatewayMetrics)
	origins := fs.String("allowed-origins", "", originsUsage)
	vapidPub := fs.String("vapid-public-key", "", "Web Push public key browsers subscribe with (chat push keys); empty: no Web Push")
	accessTTL := fs.Duration("access-ttl", 15*time.Minute, "how long an access token lasts (clients renew it with their refresh token)")
	sessionTTL := fs.Duration("session-ttl", 30*24*time.Hour, "how long a session lasts from login, however often it is refreshed")
	var editWindow time.Duration
	editWindowFlag(fs, &editWindow)
	var helloConvs int
	helloConversationsFlag(fs, &helloConvs)
	var limits limitOptions
	addLimitFlags(fs, &limits, "")
	var maxReassembly int
	maxReassemblyFlag(fs, &maxReassembly)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg := gateway.Config{JWTSecret: []byte(*secret), Drain: *drain, Web: web.Handler(),
		AllowedOrigins: splitList(*origins), VAPIDPublicKey: *vapidPub, TokenTTL: *accessTTL, SessionTTL: *sessionTTL,
		EditWindow: editWindow, HelloConversations: helloConvs, MaxReassembly: maxReassembly}
	if err := limits.apply(&cfg, ""); err != nil {
		return err
	}
	if len(*secret) < 16 {
		return errors.New("--jwt-secret (CHAT_JWT_SECRET) of at least 16 bytes is required")
	}
	log, err := newLogger(*logLevel, false)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr

	nc, err := connectNATS(natsF, "gateway", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := waitConnected(startCtx, nc); err != nil {
		return err
	}
	reg := newRegistry()
	metrics, err := serveHTTP(*metricsAddr, metricsHandler(reg, *pprofOn), log)
	if err != nil {
		return err
	}
	defer metrics.Close()
	gw, err := gateway.Start(startCtx, gateway.Options{
		Config:         cfg,
		NATS:           nc,
		StreamReplicas: *replicas,
		Registry:       reg, Log: log,
	})
	if err != nil {
		return err
	}
	log = log.With(zap.Int("node", gw.Node()))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		_ = gw.Shutdown(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := gw.Serve(ln); err != nil && !errors.Is(err, gateway.ErrServerClosed) {
			log.Error("serve", zap.Error(err))
		}
	}()
	log.Info("gateway listening", zap.String("addr", ln.Addr().String()), zap.String("metrics", metrics.URL()))
	<-ctx.Done()
	log.Info("draining", zap.Duration("drain", *drain))
	dctx, dcancel := context.WithTimeout(context.Background(), *drain+5*time.Second)
	defer dcancel()
	if err := gw.Drain(dctx); err != nil {
		log.Warn("drain incomplete", zap.Error(err))
	}
	err = gw.Shutdown(dctx)
	wg.Wait()
	log.Info("gateway stopped")
	return err
}
