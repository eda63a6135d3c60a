package gateway

import (
	"net/http"
	"net/netip"
	"runtime"
	"time"

	"github.com/chatcluster/chat"
)

// DefaultEditWindow is Config.EditWindow's default.
const DefaultEditWindow = 48 * time.Hour

// DefaultHelloConversations is Config.HelloConversations' default, also
// the most it may be: the protocol's largest conversation list page.
const DefaultHelloConversations = 1000

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	// JWTSecret signs and checks tokens (HS256). Required.
	JWTSecret []byte
	// JWTIssuer and JWTAudience are written into and required of tokens.
	// Defaults "chat" and "chat-clients".
	JWTIssuer, JWTAudience string
	// TokenTTL is how long an access token lasts. Default 15 minutes:
	// clients renew it with their refresh token (POST /api/v1/token).
	TokenTTL time.Duration
	// SessionTTL is how long a session (and so its refresh tokens) lasts
	// from login, however often it is refreshed. Default 30 days.
	SessionTTL time.Duration
	// TicketTTL is how long a WebSocket ticket may wait to be used.
	// Default 30s.
	TicketTTL time.Duration
	// Replicas of the NATS key-value bucket that makes tickets single-use:
	// 3 in a cluster. Default 1.
	TicketReplicas int

	// Drain is how long SIGTERM takes to close every connection (with
	// 4002), spread out so clients do not reconnect all at once. Default 10s.
	Drain time.Duration
	// HandshakeTimeout bounds reading a request or WebSocket handshake
	// (slowloris). Default 10s.
	HandshakeTimeout time.Duration
	// ReadTimeout bounds reading the rest of a frame once its first bytes
	// arrived, and the rest of a fragmented message once its first
	// fragment did (checked by the keepalive sweep, to the second; no
	// worker waits for it); then the connection is closed with 1008.
	// Default 10s.
	ReadTimeout time.Duration
	// WriteTimeout is how long a client may take no bytes while frames
	// wait for it before it is closed as a slow consumer. Default 10s.
	WriteTimeout time.Duration
	// PingInterval is how long a connection may be silent before the server
	// pings it; PongTimeout how long it then has to answer with anything.
	// Defaults 30s and 30s.
	PingInterval, PongTimeout time.Duration
	// MaxMessage is the largest client message after reassembly; larger
	// ones close the connection with 1009. Default 65536.
	MaxMessage int
	// MaxReassembly bounds the bytes all connections together hold for
	// messages that have not fully arrived (the fragments of unfinished
	// fragmented messages and frames still arriving beyond 4 KiB); a
	// connection whose message would pass it is closed with 1013.
	// Default DefaultMaxReassembly (64 MiB).
	MaxReassembly int
	// WriteQueue is how many frames may wait for one connection, and
	// WriteQueueBytes how many bytes; beyond either the client is too slow
	// and is closed with 1013. Defaults 512 and 4 MiB.
	WriteQueue, WriteQueueBytes int
	// SendRate is how many requests per second one connection may make,
	// with bursts of SendBurst; beyond it they are answered rate_limited.
	// Defaults 20 and 50.
	SendRate  float64
	SendBurst int
	// UserSendRate and UserSendBurst bound one user's requests across all
	// their connections to this gateway, answered rate_limited like the
	// per-connection bound. Defaults 20 and 50 (userlimits.go).
	UserSendRate  float64
	UserSendBurst int
	// MaxUserConnections bounds one user's WebSocket connections on all
	// gateways together (those on others as presence announces them); a
	// connection past it is closed with 4029 before hello.
	// Default 20 (userlimits.go).
	MaxUserConnections int
	// Throttle bounds failed logins and signups (throttle.go).
	Throttle ThrottleConfig
	// TrustedProxyHeader names the header ("X-Forwarded-For") from which
	// the throttles take the client's address, when the request comes
	// from one of TrustedProxies; from anyone else it is ignored. Empty
	// (the default): the socket's peer address (clientaddr.go).
	TrustedProxyHeader string
	TrustedProxies     []netip.Prefix
	// Workers bounds the goroutines that serve readable connections and
	// handshakes; Queue the tasks that may wait for one. When both are
	// full, accepting new connections pauses. Defaults 64*GOMAXPROCS and 4096.
	Workers, Queue int
	// MaxHandshakes bounds the connections accepted and not yet upgraded
	// (or handed to net/http); each holds at most 16 KiB of request. When
	// they are all taken, accepting waits. Default 4096.
	MaxHandshakes int
	// MaxHashes bounds concurrent password hashes (argon2id takes 19 MiB
	// and tens of milliseconds each). Default GOMAXPROCS.
	MaxHashes int
	// HelloConversations is how many conversations hello lists, and the
	// most a GET /conversations page holds. Default (and at most)
	// DefaultHelloConversations.
	HelloConversations int
	// MaxMembers bounds a group's size (default chat.MaxGroupMembers,
	// 10,000); one request creates or adds at most chat.MaxMembersPage.
	MaxMembers int
	// EditWindow is how long after sending a message its sender may edit
	// it (deleting has no limit). Default 48 hours.
	EditWindow time.Duration
	// Web serves the browser client at every path the API does not take;
	// nil serves none.
	Web http.Handler
	// ReadyCheck, when set, must also pass for /readyz to answer 200 (in
	// dev mode: the embedded store).
	ReadyCheck func() bool
	// AllowedOrigins are the origins ("https://app.example.com") besides
	// the gateway's own whose browser pages may call the API (with CORS)
	// and open the WebSocket; "*" allows any. Empty (the default): same
	// origin only. Requests without an Origin header (native clients) are
	// not affected.
	AllowedOrigins []string
	// VAPIDPublicKey is the push service's Web Push key (base64url), given
	// to browsers by GET /api/v1/push so they can subscribe. Empty: no Web
	// Push (the endpoint answers an empty key).
	VAPIDPublicKey string
}

func (c *Config) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.JWTIssuer == "" {
		c.JWTIssuer = "chat"
	}
	if c.JWTAudience == "" {
		c.JWTAudience = "chat-clients"
	}
	def(&c.TokenTTL, 15*time.Minute)
	def(&c.SessionTTL, 30*24*time.Hour)
	def(&c.TicketTTL, 30*time.Second)
	defInt(&c.TicketReplicas, 1)
	def(&c.Drain, 10*time.Second)
	def(&c.HandshakeTimeout, 10*time.Second)
	def(&c.ReadTimeout, 10*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.PingInterval, 30*time.Second)
	def(&c.PongTimeout, 30*time.Second)
	defInt(&c.MaxMessage, 65536)
	defInt(&c.MaxReassembly, DefaultMaxReassembly)
	defInt(&c.WriteQueue, 512)
	defInt(&c.WriteQueueBytes, 4<<20)
	if c.SendRate <= 0 {
		c.SendRate = 20
	}
	defInt(&c.SendBurst, 50)
	c.setLimitDefaults()
	defInt(&c.Workers, 64*runtime.GOMAXPROCS(0))
	defInt(&c.Queue, 4096)
	defInt(&c.MaxHandshakes, 4096)
	defInt(&c.MaxHashes, runtime.GOMAXPROCS(0))
	defInt(&c.HelloConversations, DefaultHelloConversations)
	defInt(&c.MaxMembers, chat.MaxGroupMembers)
	def(&c.EditWindow, DefaultEditWindow)
}
