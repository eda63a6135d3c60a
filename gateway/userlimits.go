package gateway

import (
	"time"

	"github.com/chatcluster/chat"
	"github.com/gobwas/ws"
	"golang.org/x/time/rate"
)

// statusTooManyConnections closes a connection that would take its user
// past Config.MaxUserConnections (PROTOCOL.md, Close codes).
const statusTooManyConnections ws.StatusCode = 4029

// reasonTooManyConnections is its disconnect reason.
const reasonTooManyConnections = "too_many_connections"

func (c *Config) setLimitDefaults() {
	if c.UserSendRate <= 0 {
		c.UserSendRate = 20
	}
	if c.UserSendBurst <= 0 {
		c.UserSendBurst = 50
	}
	if c.MaxUserConnections <= 0 {
		c.MaxUserConnections = 20
	}
	c.Throttle.setDefaults()
}

// userLimit is what one user's local connections share: the request rate
// across all of them. The hub keeps one per user with a local connection.
type userLimit struct {
	rate *rate.Limiter
}

func newUserLimit(cfg *Config) *userLimit {
	return &userLimit{rate: rate.NewLimiter(rate.Limit(cfg.UserSendRate), cfg.UserSendBurst)}
}

// allowRequest applies the connection's rate and then its user's: a
// request over either is answered rate_limited and not carried out.
func (c *Conn) allowRequest(at time.Time) bool {
	if !c.limiter.AllowN(at, 1) {
		c.s.m.rateLimited.Inc()
		return false
	}
	if c.userLimit != nil && !c.userLimit.rate.AllowN(at, 1) {
		c.s.throttled.WithLabelValues(throttleUserRate).Inc()
		return false
	}
	return true
}

// userConnCount is how many local connections user has.
func (h *hub) userConnCount(user chat.ID) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.users[user])
}
