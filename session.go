package chat

import "time"

// Session is one signed-in device of a user: what a refresh token is bound
// to. The refresh token itself is never stored, only its SHA-256
// (RefreshHash), so a copy of the database cannot be replayed as a login.
type Session struct {
	ID     ID     `json:"id"`
	User   ID     `json:"user"`
	Device string `json:"device"`
	// Generation counts refreshes. The refresh token of generation n is
	// retired when n+1 is issued; presenting a retired one again is reuse
	// and ends the session.
	Generation  uint32    `json:"generation"`
	RefreshHash []byte    `json:"refresh_hash,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	LastSeen    time.Time `json:"last_seen"`
	// ExpiresAt is when the session ends on its own: an absolute lifetime
	// from its creation, not extended by refreshes, so a stolen refresh
	// token cannot keep a session alive for ever.
	ExpiresAt time.Time `json:"expires_at"`
}

// Live reports whether the session has not expired at now.
func (s Session) Live(now time.Time) bool { return now.Before(s.ExpiresAt) }

// SessionsRevoked is published on SessionRevokedSubject whenever sessions
// end (log out, reuse of a retired refresh token, a password change, a
// session ended from the sessions list). Gateways refuse those sessions'
// access tokens from then on and close their WebSockets with 4001.
type SessionsRevoked struct {
	User     ID   `json:"user"`
	Sessions []ID `json:"sessions"`
}
