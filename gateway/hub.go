package gateway

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/router"
	"go.uber.org/zap"
)

const hubShards = 64

// hub is the gateway's one fan-out registry, the way centrifuge's Hub keeps
// connections and subscriptions together: the local connections (sharded by
// connection ID), each user's connections, the rooms (conversations some
// local connection is in, sharded by conversation) with their connections
// and member lists, and which rooms each user is a member of (for presence).
// A Conn's own set of conversations (Conn.convs) is the hub's too: only hub
// methods change it. The hub asks the router's Feed for a conversation's
// NATS subscription when its first local connection joins and drops it when
// the last one leaves, and it turns each event from the Feed into one frame
// that every connection in the room gets.
type hub struct {
	s    *Server
	seed maphash.Seed

	conns [hubShards]connShard
	rooms [hubShards]roomShard

	// mu guards users and memberOf. Lock order: a room shard, then mu;
	// never a room shard while holding mu.
	mu       sync.Mutex
	users    map[chat.ID][]*Conn
	limits   map[chat.ID]*userLimit          // shared by each user's connections
	memberOf map[chat.ID]map[string]struct{} // user -> local rooms they are a member of

	// wake: connections with frames from onEvent whose writers are not
	// started yet. The Feed's dispatcher goroutine only.
	wake []*Conn
}

type connShard struct {
	mu    sync.Mutex
	conns map[uint64]*Conn
}

type roomShard struct {
	mu    sync.RWMutex
	rooms map[string]*room
}

// room is a conversation some local connection is in.
type room struct {
	conns   map[*Conn]struct{}
	members []chat.ID // the conversation's members (only grows)
}

func newHub(s *Server) *hub {
	h := &hub{s: s, seed: maphash.MakeSeed(), users: make(map[chat.ID][]*Conn), limits: make(map[chat.ID]*userLimit),
		memberOf: make(map[chat.ID]map[string]struct{})}
	for i := range h.conns {
		h.conns[i].conns = make(map[uint64]*Conn)
		h.rooms[i].rooms = make(map[string]*room)
	}
	return h
}

func (h *hub) connShard(id uint64) *connShard { return &h.conns[id%hubShards] }

func (h *hub) roomShard(conv string) *roomShard {
	return &h.rooms[maphash.String(h.seed, conv)%hubShards]
}

// add registers a new connection: its user's events and presence follow
// it, and it shares its user's request rate (userlimits.go). It refuses,
// registering nothing, a connection that would take its user past
// Config.MaxUserConnections across the cluster.
func (h *hub) add(c *Conn) bool {
	h.mu.Lock()
	// Those on other gateways count as presence last heard of them.
	if len(h.users[c.user])+h.s.presence.RemoteConnections(c.user) >= h.s.cfg.MaxUserConnections {
		h.mu.Unlock()
		return false
	}
	first := len(h.users[c.user]) == 0
	h.users[c.user] = append(h.users[c.user], c)
	if first {
		h.limits[c.user] = newUserLimit(&h.s.cfg)
		if err := h.s.feed.SubscribeUser(c.user); err != nil {
			h.s.log.Warn("user subscription failed", zap.Error(err))
		}
	}
	c.userLimit = h.limits[c.user]
	h.mu.Unlock()
	sh := h.connShard(c.id)
	sh.mu.Lock()
	sh.conns[c.id] = c
	sh.mu.Unlock()
	h.s.presence.Connect(c.user)
	return true
}

// join puts c in a conversation whose members are known.
func (h *hub) join(c *Conn, conv string, members []chat.ID) {
	c.mu.Lock()
	if c.closing { // closing or torn down: teardown already took convs
		c.mu.Unlock()
		return
	}
	if _, ok := c.convs[conv]; ok {
		c.mu.Unlock()
		h.setMembers(conv, members)
		return
	}
	if c.convs == nil {
		c.convs = make(map[string]struct{})
	}
	c.convs[conv] = struct{}{}
	c.mu.Unlock()

	sh := h.roomShard(conv)
	sh.mu.Lock()
	r := sh.rooms[conv]
	if r == nil {
		r = &room{conns: make(map[*Conn]struct{}, 2)}
		sh.rooms[conv] = r
		// Under the shard lock, so that a leave racing with this join
		// cannot unsubscribe after we subscribed.
		if err := h.s.feed.Subscribe(conv); err != nil {
			h.s.log.Warn("conversation subscription failed", zap.Error(err))
		}
	}
	r.conns[c] = struct{}{}
	sh.mu.Unlock()
	h.setMembers(conv, members)
}

// in reports whether c is in conv.
func (h *hub) in(c *Conn, conv string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.convs[conv]
	return ok
}

// setMembers records a local room's member list, which only grows here:
// lists from hello and the store may arrive late. Only the members of
// rooms of at most chat.MaxInlineMembers are recorded (presence is sent
// to them); a big group's lists are nil.
func (h *hub) setMembers(conv string, members []chat.ID) {
	h.putMembers(conv, members, false)
}

// resetMembers replaces a local room's member list with the newest one
// (a membership change): those who left stop sharing presence through it.
func (h *hub) resetMembers(conv string, members []chat.ID) {
	h.putMembers(conv, members, true)
}

func (h *hub) putMembers(conv string, members []chat.ID, reset bool) {
	sh := h.roomShard(conv)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.rooms[conv]
	if r == nil || len(members) > chat.MaxInlineMembers || (!reset && len(members) <= len(r.members)) {
		return
	}
	h.mu.Lock()
	if reset {
		h.forgetMembersLocked(conv, r.members)
	}
	r.members = append([]chat.ID(nil), members...)
	for _, u := range members {
		set := h.memberOf[u]
		if set == nil {
			set = make(map[string]struct{}, 1)
			h.memberOf[u] = set
		}
		set[conv] = struct{}{}
	}
	h.mu.Unlock()
}

// leave takes c out of conv; the last connection out drops the room and
// its NATS subscription.
func (h *hub) leave(c *Conn, conv string) {
	sh := h.roomShard(conv)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.rooms[conv]
	if r == nil {
		return
	}
	delete(r.conns, c)
	if len(r.conns) > 0 {
		return
	}
	delete(sh.rooms, conv)
	h.s.feed.Unsubscribe(conv)
	h.mu.Lock()
	h.forgetMembersLocked(conv, r.members)
	h.mu.Unlock()
}

// forgetMembersLocked drops conv from members' memberOf; h.mu held.
func (h *hub) forgetMembersLocked(conv string, members []chat.ID) {
	for _, u := range members {
		if set := h.memberOf[u]; set != nil {
			delete(set, conv)
			if len(set) == 0 {
				delete(h.memberOf, u)
			}
		}
	}
}

// part takes c out of conv when its user left the conversation: it no
// longer receives it, and a request naming it asks the store again.
func (h *hub) part(c *Conn, conv string) {
	c.mu.Lock()
	_, in := c.convs[conv]
	delete(c.convs, conv)
	c.mu.Unlock()
	if in {
		h.leave(c, conv)
	}
}

// remove unregisters a connection that is torn down, with the conversations
// it was in (teardown took them from c.convs).
func (h *hub) remove(c *Conn, convs map[string]struct{}) {
	sh := h.connShard(c.id)
	sh.mu.Lock()
	_, present := sh.conns[c.id]
	delete(sh.conns, c.id)
	sh.mu.Unlock()
	if !present {
		return
	}
	for conv := range convs {
		h.leave(c, conv)
	}
	h.mu.Lock()
	list := h.users[c.user]
	for i, x := range list {
		if x == c {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(h.users, c.user)
		delete(h.limits, c.user)
		h.s.feed.UnsubscribeUser(c.user)
	} else {
		h.users[c.user] = list
	}
	h.mu.Unlock()
	h.s.presence.Disconnect(c.user)
}

// userConns returns the local connections of user.
func (h *hub) userConns(user chat.ID) []*Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Conn(nil), h.users[user]...)
}

// coMembers returns the local connections that share a conversation with
// user, each once.
func (h *hub) coMembers(user chat.ID) []*Conn {
	h.mu.Lock()
	convs := make([]string, 0, len(h.memberOf[user]))
	for conv := range h.memberOf[user] {
		convs = append(convs, conv)
	}
	h.mu.Unlock()
	seen := make(map[*Conn]struct{})
	var out []*Conn
	for _, conv := range convs {
		h.eachInRoom(conv, func(c *Conn) {
			if _, dup := seen[c]; !dup {
				seen[c] = struct{}{}
				out = append(out, c)
			}
		})
	}
	return out
}

// eachInRoom calls fn for every local connection in conv, under the room
// shard's read lock: fn must not block nor call back into the hub.
func (h *hub) eachInRoom(conv string, fn func(*Conn)) {
	sh := h.roomShard(conv)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if r := sh.rooms[conv]; r != nil {
		for c := range r.conns {
			fn(c)
		}
	}
}

// rooms reports how many conversations have local connections.
func (h *hub) roomCount() int {
	n := 0
	for i := range h.rooms {
		sh := &h.rooms[i]
		sh.mu.RLock()
		n += len(sh.rooms)
		sh.mu.RUnlock()
	}
	return n
}

// recordFrames turns a stream record into the client's frame, one function
// per kind of record: a new kind is one entry here. A record of a kind this
// gateway does not know (a newer gateway wrote it) is not delivered.
var recordFrames = map[chat.EventKind]func(data []byte) []byte{
	chat.EventMessage: messageFrame,
	chat.EventEdit:    changeFrame,
	chat.EventDelete:  changeFrame,
	chat.EventReact:   changeFrame,
}

// onEvent fans one event from the Feed out to the room: the frame is built
// once and the same bytes are queued on every local connection. Runs on the
// Feed's dispatcher; queueing never blocks and never tears a connection down.
func (h *hub) onEvent(ev *router.Event) {
	var frame []byte
	typ := kindName(ev.Kind)
	if ev.Kind == router.KindMessage {
		build := recordFrames[ev.Record]
		if build == nil {
			h.s.log.Warn("stream record of an unknown kind", zap.String("kind", string(ev.Record)))
			return
		}
		frame = build(ev.Data)
		typ = string(ev.Record)
	} else {
		frame = textFrame(ev.Data)
	}
	h.eachInRoom(ev.Conversation, func(c *Conn) {
		if ev.Kind == router.KindTyping && ev.User == c.user {
			return // typing goes to the other members only
		}
		if c.deliverLater(ev.Conversation, frame, typ) {
			h.wake = append(h.wake, c)
		}
	})
	if ev.Kind == router.KindMessage {
		h.s.m.fanoutLatency.Observe(time.Since(ev.Received).Seconds())
	}
}

// wakeWriters starts the writers of the connections onEvent queued frames
// for, once the Feed has no event waiting (router.FeedConfig.OnIdle): under
// load a connection then takes several events in one write, as nats-server
// flushes its clients once per read rather than once per message.
func (h *hub) wakeWriters() {
	for i, c := range h.wake {
		h.s.scheduleWrite(c.flushFn)
		h.wake[i] = nil
	}
	h.wake = h.wake[:0]
}

func kindName(k router.Kind) string {
	switch k {
	case router.KindMessage:
		return "message"
	case router.KindTyping:
		return "typing"
	case router.KindRead:
		return "read"
	}
	return "event"
}

// each calls fn for every connection; fn runs under a shard lock and must
// not block.
func (h *hub) each(fn func(*Conn)) {
	for i := range h.conns {
		sh := &h.conns[i]
		sh.mu.Lock()
		for _, c := range sh.conns {
			fn(c)
		}
		sh.mu.Unlock()
	}
}

// snapshot returns every connection.
func (h *hub) snapshot() []*Conn {
	var out []*Conn
	h.each(func(c *Conn) { out = append(out, c) })
	return out
}

func (h *hub) count() int {
	n := 0
	for i := range h.conns {
		sh := &h.conns[i]
		sh.mu.Lock()
		n += len(sh.conns)
		sh.mu.Unlock()
	}
	return n
}
