package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// natsFlags are how a process reaches and authenticates to NATS: the
// same on chat gateway, store and push.
type natsFlags struct {
	urls     *string
	user     *string
	password *string
	creds    *string
}

// addNATSFlags registers --nats, --nats-user, --nats-password and
// --nats-creds (CHAT_NATS, CHAT_NATS_USER, ...).
func addNATSFlags(fs *flag.FlagSet) natsFlags {
	return natsFlags{
		urls:     fs.String("nats", "nats://127.0.0.1:4222", "NATS server URLs, comma separated"),
		user:     fs.String("nats-user", "", "NATS user name (k8s/base/nats-auth.conf: gateway, store, push); empty: none"),
		password: fs.String("nats-password", "", "NATS password of --nats-user (give it through the environment, from a Secret)"),
		creds:    fs.String("nats-creds", "", "NATS credentials file (JWT and NKey seed), instead of --nats-user"),
	}
}

// errNATSAuthFlags: a user without a password, or both a user and creds.
var errNATSAuthFlags = errors.New("NATS credentials: give --nats-user with --nats-password, or --nats-creds, not both")

// options turns the flags into connection options.
func (f natsFlags) options() ([]nats.Option, error) {
	switch {
	case *f.creds != "" && (*f.user != "" || *f.password != ""):
		return nil, errNATSAuthFlags
	case *f.creds != "":
		return []nats.Option{nats.UserCredentials(*f.creds)}, nil
	case (*f.user == "") != (*f.password == ""):
		return nil, errNATSAuthFlags
	case *f.user != "":
		return []nats.Option{nats.UserInfo(*f.user, *f.password)}, nil
	}
	return nil, nil
}

// inboxPrefix is the reply-subject prefix of a role's connections: each
// role's NATS user may subscribe only to its own (k8s/base/nats-auth.conf),
// so no other role can read the replies it is sent (the store's answers to
// a gateway, say).
func inboxPrefix(role string) string { return "_INBOX_" + role }

// connectNATS connects to a NATS cluster as role (gateway, store, push)
// and keeps reconnecting forever: a gateway or store without NATS reports
// not ready and waits. An authorization error is logged, and retried.
func connectNATS(f natsFlags, role string, log *zap.Logger) (*nats.Conn, error) {
	auth, err := f.options()
	if err != nil {
		return nil, err
	}
	opts := append([]nats.Option{
		nats.Name("chat-" + role),
		nats.CustomInboxPrefix(inboxPrefix(role)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("NATS disconnected", zap.Error(err)) }),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", zap.String("url", c.ConnectedUrl())) }),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			// A permission violation is a deployment error (nats-auth.conf
			// and the code disagree); anything else, a slow consumer say,
			// is the load's.
			if errors.Is(err, nats.ErrPermissionViolation) || errors.Is(err, nats.ErrAuthorization) {
				log.Error("NATS", zap.String("subscription", subj), zap.Error(err))
				return
			}
			log.Warn("NATS", zap.String("subscription", subj), zap.Error(err))
		}),
	}, auth...)
	nc, err := nats.Connect(*f.urls, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", *f.urls, err)
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
			if err := nc.LastError(); err != nil {
				return fmt.Errorf("waiting for NATS: %w (last error: %v)", ctx.Err(), err)
			}
			return fmt.Errorf("waiting for NATS: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
