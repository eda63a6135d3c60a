package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// connectNATS connects to a NATS cluster and keeps reconnecting forever:
// a gateway or store without NATS reports not ready and waits.
func connectNATS(urls, name string, log *zap.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(urls,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("NATS disconnected", zap.Error(err)) }),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", zap.String("url", c.ConnectedUrl())) }),
	)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", urls, err)
	}
	return nc, nil
}

// waitConnected waits until nc is connected (RetryOnFailedConnect returns
// before that).
func waitConnected(ctx context.Context, nc *nats.Conn) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for NATS: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
