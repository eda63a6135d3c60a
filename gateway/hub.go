package gateway

import (
	"hash/maphash"
	"sync"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/router"
)

const hubShards = 64

// hub is the registry of local connections, sharded so that no one lock is
// hot, with the per-user index and the member lists of the conversations
// local connections are in (for presence).
type hub struct {
	s    *Server
	seed maphash.Seed

	shards [hubShards]hubShard

	mu       sync.Mutex
	users    map[chat.ID][]*Conn
	rooms    map[string]*room                // conversations with local interest
	memberOf map[chat.ID]map[string]struct{} // user -> local rooms they are a member of
}

type hubShard struct {
	mu    sync.Mutex
	conns map[uint64]*Conn
}

// room is a conversation some local connection is in.
type room struct {
	members []chat.ID
	refs    int
}

func newHub(s *Server) *hub {
	h := &hub{s: s, seed: maphash.MakeSeed(), users: make(map[chat.ID][]*Conn),
		rooms: make(map[string]*room), memberOf: make(map[chat.ID]map[string]struct{})}
	for i := range h.shards {
		h.shards[i].conns = make(map[uint64]*Conn)
	}
	return h
}

func (h *hub) shard(id uint64) *hubShard { return &h.shards[id%hubShards] }

func (h *hub) add(c *Conn) {
	sh := h.shard(c.id)
	sh.mu.Lock()
	sh.conns[c.id] = c
	sh.mu.Unlock()
	h.mu.Lock()
	h.users[c.user] = append(h.users[c.user], c)
	h.mu.Unlock()
	if err := h.s.interest.JoinUser(c.user); err != nil {
		h.s.log.Warn("user subscription failed")
	}
	h.s.presence.Connect(c.user)
}

// join subscribes c to a conversation whose members are known.
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

	h.mu.Lock()
	r := h.rooms[conv]
	if r == nil {
		r = &room{}
		h.rooms[conv] = r
	}
	r.refs++
	h.mu.Unlock()
	h.setMembers(conv, members)
	if err := h.s.interest.Join(conv, c); err != nil {
		h.s.log.Warn("conversation subscription failed")
	}
}

// setMembers records a local room's member list (it only grows).
func (h *hub) setMembers(conv string, members []chat.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[conv]
	if r == nil || len(members) <= len(r.members) {
		return
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
}

func (h *hub) leaveRoomLocked(conv string) {
	r := h.rooms[conv]
	if r == nil {
		return
	}
	if r.refs--; r.refs > 0 {
		return
	}
	delete(h.rooms, conv)
	for _, u := range r.members {
		if set := h.memberOf[u]; set != nil {
			delete(set, conv)
			if len(set) == 0 {
				delete(h.memberOf, u)
			}
		}
	}
}

func (h *hub) remove(c *Conn, convs map[string]struct{}) {
	sh := h.shard(c.id)
	sh.mu.Lock()
	_, present := sh.conns[c.id]
	delete(sh.conns, c.id)
	sh.mu.Unlock()
	if !present {
		return
	}
	for conv := range convs {
		h.s.interest.Leave(conv, c)
	}
	h.mu.Lock()
	for conv := range convs {
		h.leaveRoomLocked(conv)
	}
	list := h.users[c.user]
	for i, x := range list {
		if x == c {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(h.users, c.user)
	} else {
		h.users[c.user] = list
	}
	h.mu.Unlock()
	h.s.interest.LeaveUser(c.user)
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
		h.s.interest.Each(conv, func(sub router.Subscriber) {
			if c, ok := sub.(*Conn); ok {
				if _, dup := seen[c]; !dup {
					seen[c] = struct{}{}
					out = append(out, c)
				}
			}
		})
	}
	return out
}

// each calls fn for every connection; fn runs under a shard lock and must
// not block.
func (h *hub) each(fn func(*Conn)) {
	for i := range h.shards {
		sh := &h.shards[i]
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
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		n += len(sh.conns)
		sh.mu.Unlock()
	}
	return n
}
