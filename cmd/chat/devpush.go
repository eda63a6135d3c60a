package main

import (
	"context"

	"github.com/chatcluster/chat/store/push"
	"github.com/prometheus/client_golang/prometheus"
)

// devPushOptions are chat dev's push flags: --push-gateway-url,
// --push-delay, --vapid-private-key (default: made once and kept in
// --data), --vapid-subject.
type devPushOptions struct {
	flags pushFlags
	// Config, when set (tests), is used instead of the flags.
	Config *push.Config
}

// startPush starts chat dev's push service on its NATS connection and
// returns the Web Push public key for the gateway.
func (d *devServer) startPush(ctx context.Context, o devOptions, reg prometheus.Registerer) (string, error) {
	var cfg push.Config
	switch {
	case o.Push.Config != nil:
		cfg = *o.Push.Config
	case o.Push.flags.delay != nil:
		key, err := devVAPID(o.Data, *o.Push.flags.vapidKey)
		if err != nil {
			return "", err
		}
		*o.Push.flags.vapidKey = key
		if cfg, err = o.Push.flags.config(); err != nil {
			return "", err
		}
	default: // startDev called without flags (tests): defaults, a kept key
		key, err := devVAPID(o.Data, "")
		if err != nil {
			return "", err
		}
		k, err := push.ParseVAPIDPrivate(key)
		if err != nil {
			return "", err
		}
		cfg.VAPID = &k
	}
	cfg.Log = d.log.Named("push")
	p, err := startPush(ctx, d.nc, reg, cfg)
	if err != nil {
		return "", err
	}
	d.push = p
	if cfg.VAPID == nil {
		return "", nil
	}
	return cfg.VAPID.Public, nil
}
