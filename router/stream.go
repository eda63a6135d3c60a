package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig sizes the message stream.
type StreamConfig struct {
	// Replicas is the number of NATS nodes holding each message: 1 for a
	// single server (dev), 3 in a cluster so an ack survives losing a node.
	// Default 1.
	Replicas int
	// Duplicates is JetStream's deduplication window, and so how long a
	// resent client_id is recognised. Default 10 minutes.
	Duplicates time.Duration
	// MaxAge is how long messages stay in the stream after the store has
	// them; it bounds the backlog the stream can hold while the database is
	// down. Must be at least Duplicates. Default 24 hours.
	MaxAge time.Duration
	// MaxBytes caps the stream's size; 0 means no cap.
	MaxBytes int64
}

func (c *StreamConfig) setDefaults() {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Duplicates <= 0 {
		c.Duplicates = 10 * time.Minute
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 24 * time.Hour
	}
	if c.MaxAge < c.Duplicates {
		c.MaxAge = c.Duplicates
	}
}

// EnsureStream creates the message stream, or updates it to cfg. Gateways
// and stores all call it at start: the first wins, the rest find it.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	cfg.setDefaults()
	sc := jetstream.StreamConfig{
		Name:        chat.StreamName,
		Description: "chat messages, one subject per conversation",
		Subjects:    []string{chat.MsgSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.Duplicates,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Discard:     jetstream.DiscardOld,
		AllowDirect: true,
		// A gateway publishes the sends that queue up for one conversation
		// as one atomic batch: one round trip for all of them.
		AllowAtomicPublish: true,
		// Gateways subscribe to the copy JetStream republishes once the
		// message is stored: they never fan out a message that failed to
		// store, and the Nats-Sequence headers let them see gaps.
		RePublish: &jetstream.RePublish{
			Source:      chat.MsgSubjects,
			Destination: chat.ConvMsgRepublish,
		},
	}
	return ensure(ctx, "stream "+chat.StreamName, func(actx context.Context) (jetstream.Stream, error) {
		// CreateStream returns an identical existing stream as it is;
		// CreateOrUpdateStream was seen to hang when several processes of a
		// fresh cluster called it at once for an R3 stream.
		st, err := js.CreateStream(actx, sc)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			st, err = js.UpdateStream(actx, sc)
		}
		return st, err
	})
}

// attemptTimeout bounds one JetStream API call of a start-up step, so that
// a request lost while a fresh cluster elects its leaders is retried rather
// than waited for until the caller's deadline.
const attemptTimeout = 5 * time.Second

// ensure retries a start-up step, each attempt with its own timeout and a
// growing pause, until it succeeds or ctx ends (or two minutes pass, when
// ctx has no deadline).
func ensure[T any](ctx context.Context, what string, step func(context.Context) (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	var zero T
	var lastErr error
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		v, err := step(actx)
		cancel()
		if err == nil {
			return v, nil
		}
		lastErr = err
		pause := time.Duration(min(attempt+1, 10)) * 100 * time.Millisecond
		select {
		case <-ctx.Done():
			return zero, fmt.Errorf("router: %s: %w (last error: %v)", what, ctx.Err(), lastErr)
		case <-time.After(pause):
		}
	}
}
