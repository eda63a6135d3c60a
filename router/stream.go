package router

import (
	"context"
	"errors"
	"fmt"
	"time"

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
		Name:        StreamName,
		Description: "chat messages, one subject per conversation",
		Subjects:    []string{MsgSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.Duplicates,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Discard:     jetstream.DiscardOld,
		AllowDirect: true,
		// Gateways subscribe to the copy JetStream republishes once the
		// message is stored: they never fan out a message that failed to
		// store, and the Nats-Sequence headers let them see gaps.
		RePublish: &jetstream.RePublish{
			Source:      MsgSubjects,
			Destination: convPrefix + "{{wildcard(1)}}.msg",
		},
	}
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		s, err := js.CreateOrUpdateStream(ctx, sc)
		if err == nil {
			return s, nil
		}
		lastErr = err
		// A cluster that is still electing its meta leader answers with
		// errors for a moment after start.
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("router: stream %s: %w", StreamName, ctx.Err())
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("router: stream %s: %w", StreamName, lastErr)
}
