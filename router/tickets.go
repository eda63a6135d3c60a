package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrTicketUsed is returned by Claim for a ticket already claimed.
var ErrTicketUsed = errors.New("router: ticket already used")

// TicketsConfig tunes the ticket bucket.
type TicketsConfig struct {
	// TTL is how long a claimed ticket is remembered: longer than a ticket
	// is valid, leeway included. Default 1 minute.
	TTL time.Duration
	// Replicas of the bucket: 3 in a cluster. Default 1.
	Replicas int
}

// Tickets makes WebSocket tickets single-use across every gateway: the
// first Claim of a ticket ID creates its key in a key-value bucket; any
// later one, on any gateway, finds it there.
type Tickets struct {
	kv jetstream.KeyValue
}

// NewTickets creates or updates the bucket.
func NewTickets(ctx context.Context, js jetstream.JetStream, cfg TicketsConfig) (*Tickets, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = time.Minute
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	kvc := jetstream.KeyValueConfig{
		Bucket: chat.TicketBucket, TTL: cfg.TTL, Replicas: cfg.Replicas, History: 1,
		Description: "WebSocket tickets already used (single use across gateways)",
	}
	kv, err := ensure(ctx, "ticket bucket", func(actx context.Context) (jetstream.KeyValue, error) {
		kv, err := js.CreateKeyValue(actx, kvc)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.UpdateKeyValue(actx, kvc)
		}
		return kv, err
	})
	if err != nil {
		return nil, err
	}
	return &Tickets{kv: kv}, nil
}

// Claim marks ticket id used. ErrTicketUsed when it already was.
func (t *Tickets) Claim(ctx context.Context, id string) error {
	_, err := t.kv.Create(ctx, "t."+id, nil)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return ErrTicketUsed
	}
	if err != nil {
		return fmt.Errorf("router: claim ticket: %w", err)
	}
	return nil
}
