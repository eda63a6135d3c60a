package router

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// RevocationsConfig tunes the revocation set. Zero values take the
// defaults.
type RevocationsConfig struct {
	// Keep is how long a revoked session is remembered: longer than any
	// access token of it can live (its lifetime plus the leeway tokens are
	// checked with). Required.
	Keep time.Duration
	// SyncWait is how long a starting gateway collects the other gateways'
	// sets. Default 300ms.
	SyncWait time.Duration
	// OnRevoke is told of sessions revoked (by the store's announcement,
	// or Add), from the NATS delivery goroutine: it must not block.
	OnRevoke func(user chat.ID, sessions []chat.ID)
	Log      *zap.Logger
}

// Revocations is a gateway's set of sessions revoked within the access
// token lifetime. Access tokens are checked without asking the store (they
// are signed), so a session that ended must be remembered here until every
// access token it was given has expired. The store announces each ending
// on chat.SessionRevokedSubject; a starting gateway asks the others for
// their sets, so a gateway that was down then does not accept the token.
type Revocations struct {
	nc  *nats.Conn
	cfg RevocationsConfig

	mu      sync.RWMutex
	revoked map[chat.ID]time.Time // session -> when it may be forgotten

	subs []*nats.Subscription
	// reconnects is the NATS connection's reconnect count at the last
	// sync: announcements made while it was away never reach it, so after
	// a reconnect it asks the other gateways again (sweep goroutine only).
	reconnects uint64
	stop       chan struct{}
	wg         sync.WaitGroup
	once       sync.Once
}

// NewRevocations subscribes to announcements and gathers the other
// gateways' sets.
func NewRevocations(ctx context.Context, nc *nats.Conn, cfg RevocationsConfig) (*Revocations, error) {
	if cfg.Keep <= 0 {
		return nil, fmt.Errorf("router: revocations: Keep must be positive")
	}
	if cfg.SyncWait <= 0 {
		cfg.SyncWait = 300 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	r := &Revocations{nc: nc, cfg: cfg, revoked: make(map[chat.ID]time.Time), stop: make(chan struct{})}
	for subj, h := range map[string]nats.MsgHandler{
		chat.SessionRevokedSubject: r.onRevoked,
		chat.SessionSyncSubject:    r.onSync,
	} {
		sub, err := nc.Subscribe(subj, h)
		if err != nil {
			r.unsubscribe()
			return nil, fmt.Errorf("router: revocations: %w", err)
		}
		r.subs = append(r.subs, sub)
	}
	r.reconnects = nc.Stats().Reconnects
	if _, err := r.sync(ctx); err != nil {
		r.unsubscribe()
		return nil, err
	}
	r.wg.Add(1)
	go r.sweep()
	return r, nil
}

// Revoked reports whether session has been revoked.
func (r *Revocations) Revoked(session chat.ID) bool {
	r.mu.RLock()
	_, ok := r.revoked[session]
	r.mu.RUnlock()
	return ok
}

// Len is the number of sessions remembered.
func (r *Revocations) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.revoked)
}

// Add revokes sessions here at once, before the store's announcement
// arrives (the gateway that ended them answers its client only after), and
// calls OnRevoke.
func (r *Revocations) Add(user chat.ID, sessions []chat.ID) {
	if len(sessions) == 0 {
		return
	}
	until := time.Now().Add(r.cfg.Keep)
	r.mu.Lock()
	for _, id := range sessions {
		r.revoked[id] = until
	}
	r.mu.Unlock()
	if r.cfg.OnRevoke != nil {
		r.cfg.OnRevoke(user, sessions)
	}
}

func (r *Revocations) onRevoked(m *nats.Msg) {
	var ev chat.SessionsRevoked
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		r.cfg.Log.Warn("bad session revocation", zap.Error(err))
		return
	}
	r.Add(ev.User, ev.Sessions)
}

// syncReply is a gateway's answer to a sync request: every session it
// remembers, with how long it still must be remembered.
type syncReply struct {
	Sessions []chat.ID `json:"sessions"`
	Left     []int64   `json:"left_ms"`
}

func (r *Revocations) onSync(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	now := time.Now()
	var rep syncReply
	r.mu.RLock()
	for id, until := range r.revoked {
		rep.Sessions = append(rep.Sessions, id)
		rep.Left = append(rep.Left, until.Sub(now).Milliseconds())
	}
	r.mu.RUnlock()
	b, err := json.Marshal(rep)
	if err == nil {
		err = m.Respond(b)
	}
	if err != nil {
		r.cfg.Log.Debug("revocation sync reply", zap.Error(err))
	}
}

// sync asks the other gateways for their sets and takes the union; it
// returns the sessions it did not know of.
func (r *Revocations) sync(ctx context.Context) (learned []chat.ID, err error) {
	inbox := r.nc.NewRespInbox()
	replies := make(chan *nats.Msg, 64)
	sub, err := r.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, fmt.Errorf("router: revocation sync: %w", err)
	}
	defer sub.Unsubscribe() //nolint:errcheck // best effort
	if err := r.nc.PublishRequest(chat.SessionSyncSubject, inbox, nil); err != nil {
		return nil, fmt.Errorf("router: revocation sync: %w", err)
	}
	deadline := time.NewTimer(r.cfg.SyncWait)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return learned, fmt.Errorf("router: revocation sync: %w", ctx.Err())
		case <-deadline.C:
			return learned, nil
		case m := <-replies:
			var rep syncReply
			if json.Unmarshal(m.Data, &rep) != nil || len(rep.Left) != len(rep.Sessions) {
				continue
			}
			now := time.Now()
			r.mu.Lock()
			for i, id := range rep.Sessions {
				left := min(time.Duration(rep.Left[i])*time.Millisecond, r.cfg.Keep)
				if until := now.Add(left); left > 0 && until.After(r.revoked[id]) {
					if _, known := r.revoked[id]; !known {
						learned = append(learned, id)
					}
					r.revoked[id] = until
				}
			}
			r.mu.Unlock()
		}
	}
}

// sweep forgets sessions whose tokens have all expired, so the set holds
// only the revocations of one access token lifetime.
func (r *Revocations) sweep() {
	defer r.wg.Done()
	t := time.NewTicker(min(r.cfg.Keep/4, time.Minute))
	defer t.Stop()
	re := time.NewTicker(time.Second)
	defer re.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-re.C:
			r.resyncAfterReconnect()
		case now := <-t.C:
			r.mu.Lock()
			for id, until := range r.revoked {
				if now.After(until) {
					delete(r.revoked, id)
				}
			}
			r.mu.Unlock()
		}
	}
}

// resyncAfterReconnect asks the other gateways again once the NATS
// connection has reconnected, and closes the sockets of sessions revoked
// meanwhile (OnRevoke; the user is not known then, 0).
func (r *Revocations) resyncAfterReconnect() {
	n := r.nc.Stats().Reconnects
	if n == r.reconnects || !r.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.SyncWait+time.Second)
	defer cancel()
	learned, err := r.sync(ctx)
	if err != nil {
		r.cfg.Log.Warn("revocation sync after reconnect", zap.Error(err))
		return // tried again next tick
	}
	r.reconnects = n
	if len(learned) > 0 && r.cfg.OnRevoke != nil {
		r.cfg.OnRevoke(0, learned)
	}
}

func (r *Revocations) unsubscribe() {
	for _, s := range r.subs {
		_ = s.Unsubscribe()
	}
}

// Close stops listening. Safe twice.
func (r *Revocations) Close() {
	r.once.Do(func() {
		r.unsubscribe()
		close(r.stop)
		r.wg.Wait()
	})
}
