package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"go.uber.org/zap"
)

// PresenceConfig tunes presence. Zero values take the defaults.
type PresenceConfig struct {
	// Heartbeat is how often this gateway says it is alive. Default 10s.
	Heartbeat time.Duration
	// Timeout is how long a silent gateway's users stay online: a crashed
	// gateway's users go offline within Timeout plus one sweep. Default 40s
	// (PROTOCOL.md promises 60s).
	Timeout time.Duration
	// OfflineGrace is how long a user whose last connection closed stays
	// online here, so a page reload does not flicker. Default 2s
	// (PROTOCOL.md promises offline within 10s).
	OfflineGrace time.Duration
	// SyncWait is how long a starting gateway collects the other gateways'
	// online users. Default 500ms.
	SyncWait time.Duration
	// OnChange is told when a user comes online anywhere (first connection
	// in the cluster) or goes offline everywhere. Called from presence's
	// own goroutines, never under its lock.
	OnChange func(user chat.ID, online bool)
	Log      *zap.Logger
}

func (c *PresenceConfig) setDefaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 4 * c.Heartbeat
	}
	if c.OfflineGrace <= 0 {
		c.OfflineGrace = 2 * time.Second
	}
	if c.SyncWait <= 0 {
		c.SyncWait = 500 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
}

// Presence keeps the cluster-wide online set and each user's connection
// count per gateway. Each gateway announces its own users' count at every
// connect and disconnect and their last disconnect, and heartbeats; every
// gateway keeps the union, and drops a gateway's users when its heartbeats
// stop, so the users of a crashed gateway go offline on their own.
type Presence struct {
	nc   *nats.Conn
	cfg  PresenceConfig
	self string // this process's instance: node IDs are reused, instances never

	mu      sync.Mutex
	local   map[chat.ID]int       // connections per local user
	leaving map[chat.ID]time.Time // local users whose last connection closed, when to announce it
	online  map[chat.ID][]string  // user -> instances it is connected to
	// conns are other instances' connection counts of their users, as
	// they last announced them (an instance of before counts: 1).
	conns    map[chat.ID]map[string]int
	lastSeen map[string]time.Time // instance -> last heartbeat or event

	subs   []*nats.Subscription
	stop   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

type presenceEvent struct {
	Instance string    `json:"instance"`
	Online   bool      `json:"online,omitempty"`
	Users    []chat.ID `json:"users,omitempty"` // in sync replies
	// Conns is the instance's connection count of the user (of each of
	// Users in a sync reply): announced at every change, so that every
	// gateway can bound a user's connections across the cluster.
	Conns  int   `json:"conns,omitempty"`
	Counts []int `json:"counts,omitempty"`
}

// NewPresence joins the cluster's presence and collects who is online.
func NewPresence(ctx context.Context, nc *nats.Conn, cfg PresenceConfig) (*Presence, error) {
	cfg.setDefaults()
	p := &Presence{
		nc: nc, cfg: cfg, self: nuid.Next(),
		local: make(map[chat.ID]int), leaving: make(map[chat.ID]time.Time),
		online: make(map[chat.ID][]string), lastSeen: make(map[string]time.Time),
		conns: make(map[chat.ID]map[string]int),
		stop:  make(chan struct{}),
	}
	for subj, h := range map[string]nats.MsgHandler{
		chat.PresenceSubjectPrefix + "*": p.onEvent,
		chat.HeartbeatSubjects:           p.onHeartbeat,
		chat.PresenceSyncSubject:         p.onSync,
	} {
		sub, err := nc.Subscribe(subj, h)
		if err != nil {
			p.unsubscribe()
			return nil, fmt.Errorf("router: presence: %w", err)
		}
		p.subs = append(p.subs, sub)
	}
	if err := p.sync(ctx); err != nil {
		p.unsubscribe()
		return nil, err
	}
	p.wg.Add(1)
	go p.loop()
	return p, nil
}

// sync asks every other gateway for its online users.
func (p *Presence) sync(ctx context.Context) error {
	inbox := p.nc.NewRespInbox()
	replies := make(chan *nats.Msg, 64)
	sub, err := p.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return fmt.Errorf("router: presence sync: %w", err)
	}
	defer sub.Unsubscribe()
	if err := p.nc.PublishRequest(chat.PresenceSyncSubject, inbox, []byte(p.self)); err != nil {
		return fmt.Errorf("router: presence sync: %w", err)
	}
	deadline := time.NewTimer(p.cfg.SyncWait)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("router: presence sync: %w", ctx.Err())
		case <-deadline.C:
			return nil
		case m := <-replies:
			var ev presenceEvent
			if json.Unmarshal(m.Data, &ev) != nil || ev.Instance == p.self {
				continue
			}
			p.mu.Lock()
			p.lastSeen[ev.Instance] = time.Now()
			for i, u := range ev.Users {
				p.online[u] = addInstance(p.online[u], ev.Instance)
				n := 1
				if i < len(ev.Counts) {
					n = ev.Counts[i]
				}
				p.setConnsLocked(u, ev.Instance, n)
			}
			p.mu.Unlock()
		}
	}
}

func (p *Presence) onSync(m *nats.Msg) {
	if string(m.Data) == p.self || m.Reply == "" {
		return
	}
	p.mu.Lock()
	users := make([]chat.ID, 0, len(p.local))
	counts := make([]int, 0, len(p.local))
	for u, n := range p.local {
		users = append(users, u)
		counts = append(counts, n)
	}
	p.mu.Unlock()
	b, _ := json.Marshal(presenceEvent{Instance: p.self, Users: users, Counts: counts})
	_ = m.Respond(b)
}

// Connect counts a new local connection of user and announces the count.
func (p *Presence) Connect(user chat.ID) {
	p.mu.Lock()
	p.local[user]++
	n := p.local[user]
	delete(p.leaving, user)
	p.mu.Unlock()
	p.announceConns(user, n)
}

// Disconnect counts a closed local connection of user; the last one out
// is announced after OfflineGrace unless the user reconnects, others at
// once (the count).
func (p *Presence) Disconnect(user chat.ID) {
	p.mu.Lock()
	if p.local[user] <= 1 {
		delete(p.local, user)
		p.leaving[user] = time.Now().Add(p.cfg.OfflineGrace)
		p.mu.Unlock()
		return
	}
	p.local[user]--
	n := p.local[user]
	p.mu.Unlock()
	p.announceConns(user, n)
}

// RemoteConnections is how many connections user holds on the other
// gateways, as they last announced them: a user connecting on two
// gateways at the same moment may be counted late by both.
func (p *Presence) RemoteConnections(user chat.ID) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for inst, c := range p.conns[user] {
		if inst != p.self {
			n += c
		}
	}
	return n
}

// setConnsLocked records instance's count of user's connections (0: none).
func (p *Presence) setConnsLocked(user chat.ID, instance string, n int) {
	if n <= 0 {
		if m := p.conns[user]; m != nil {
			delete(m, instance)
			if len(m) == 0 {
				delete(p.conns, user)
			}
		}
		return
	}
	m := p.conns[user]
	if m == nil {
		m = make(map[string]int, 1)
		p.conns[user] = m
	}
	m[instance] = n
}

// Online reports whether user is connected anywhere in the cluster.
func (p *Presence) Online(user chat.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, local := p.local[user]
	_, leaving := p.leaving[user]
	return local || leaving || len(p.online[user]) > 0
}

func (p *Presence) announce(user chat.ID, online bool) {
	b, _ := json.Marshal(presenceEvent{Instance: p.self, Online: online})
	p.publish(user, b)
}

// announceConns says user is online here with n connections.
func (p *Presence) announceConns(user chat.ID, n int) {
	b, _ := json.Marshal(presenceEvent{Instance: p.self, Online: true, Conns: n})
	p.publish(user, b)
}

func (p *Presence) publish(user chat.ID, b []byte) {
	if err := p.nc.Publish(chat.PresenceSubject(user), b); err != nil {
		p.cfg.Log.Warn("presence publish failed", zap.Error(err))
	}
}

func (p *Presence) onEvent(m *nats.Msg) {
	u, err := chat.ParseID(strings.TrimPrefix(m.Subject, chat.PresenceSubjectPrefix))
	var ev presenceEvent
	if err != nil || json.Unmarshal(m.Data, &ev) != nil || ev.Instance == "" {
		return
	}
	p.mu.Lock()
	wasOnline := p.onlineLocked(u)
	if ev.Instance != p.self {
		p.lastSeen[ev.Instance] = time.Now()
	}
	if ev.Online {
		p.online[u] = addInstance(p.online[u], ev.Instance)
		p.setConnsLocked(u, ev.Instance, max(ev.Conns, 1))
	} else {
		p.setConnsLocked(u, ev.Instance, 0)
		p.online[u] = removeInstance(p.online[u], ev.Instance)
		if len(p.online[u]) == 0 {
			delete(p.online, u)
		}
	}
	isOnline := p.onlineLocked(u)
	p.mu.Unlock()
	if wasOnline != isOnline && p.cfg.OnChange != nil {
		p.cfg.OnChange(u, isOnline)
	}
}

// onlineLocked is the cluster's view, built from announcements only (our
// own come back to us through NATS like everyone else's), so that a local
// user's first connection is a change here too.
func (p *Presence) onlineLocked(u chat.ID) bool { return len(p.online[u]) > 0 }

func (p *Presence) onHeartbeat(m *nats.Msg) {
	inst := string(m.Data)
	if inst == "" || inst == p.self {
		return
	}
	p.mu.Lock()
	p.lastSeen[inst] = time.Now()
	p.mu.Unlock()
}

func (p *Presence) loop() {
	defer p.wg.Done()
	hb := time.NewTicker(p.cfg.Heartbeat)
	defer hb.Stop()
	sweepEvery := p.cfg.OfflineGrace / 2
	if sweepEvery > time.Second {
		sweepEvery = time.Second
	}
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-hb.C:
			_ = p.nc.Publish(chat.HeartbeatSubject(p.self), []byte(p.self))
		case now := <-sweep.C:
			p.sweep(now)
		}
	}
}

// sweep announces local users whose grace ran out and forgets the users of
// gateways that went silent.
func (p *Presence) sweep(now time.Time) {
	var gone []chat.ID
	var changed []chat.ID
	p.mu.Lock()
	for u, at := range p.leaving {
		if now.After(at) {
			delete(p.leaving, u)
			gone = append(gone, u)
		}
	}
	for inst, seen := range p.lastSeen {
		if now.Sub(seen) <= p.cfg.Timeout {
			continue
		}
		delete(p.lastSeen, inst)
		for u, insts := range p.online {
			if rest := removeInstance(insts, inst); len(rest) != len(insts) {
				p.setConnsLocked(u, inst, 0)
				if len(rest) == 0 {
					delete(p.online, u)
				} else {
					p.online[u] = rest
				}
				if !p.onlineLocked(u) {
					changed = append(changed, u)
				}
			}
		}
	}
	p.mu.Unlock()
	for _, u := range gone {
		p.announce(u, false)
	}
	if p.cfg.OnChange != nil {
		for _, u := range changed {
			p.cfg.OnChange(u, false)
		}
	}
}

// Close announces this gateway's users offline and stops. Safe twice.
func (p *Presence) Close() {
	p.closed.Do(func() {
		close(p.stop)
		p.wg.Wait()
		p.mu.Lock()
		users := make([]chat.ID, 0, len(p.local)+len(p.leaving))
		for u := range p.local {
			users = append(users, u)
		}
		for u := range p.leaving {
			users = append(users, u)
		}
		p.local = map[chat.ID]int{}
		p.leaving = map[chat.ID]time.Time{}
		p.mu.Unlock()
		for _, u := range users {
			p.announce(u, false)
		}
		p.unsubscribe()
	})
}

func (p *Presence) unsubscribe() {
	for _, s := range p.subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			p.cfg.Log.Debug("presence unsubscribe", zap.Error(err))
		}
	}
	p.subs = nil
}

func addInstance(list []string, inst string) []string {
	for _, s := range list {
		if s == inst {
			return list
		}
	}
	return append(list, inst)
}

func removeInstance(list []string, inst string) []string {
	for i, s := range list {
		if s == inst {
			out := make([]string, 0, len(list)-1)
			out = append(out, list[:i]...)
			return append(out, list[i+1:]...)
		}
	}
	return list
}
