package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatcluster/chat/gateway/netpoll"
	"github.com/chatcluster/chat/gateway/workers"
	"github.com/chatcluster/chat/router"
	"github.com/chatcluster/chat/store/storeclient"
	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("gateway: server closed")

// Deps are what a gateway talks to.
type Deps struct {
	NATS      *nats.Conn
	Stream    jetstream.Stream // the message stream, for filling gaps
	Publisher *router.Publisher
	Store     *storeclient.Client
	// Registry takes the gateway's metrics (served by the process on its
	// metrics address, not on the gateway's port).
	Registry prometheus.Registerer
	Log      *zap.Logger
}

// Server is a gateway: it serves PROTOCOL.md on one listener.
type Server struct {
	cfg      Config
	nc       *nats.Conn
	store    *storeclient.Client
	blocks   blockCache // direct conversations with a block, see consent.go
	pub      *router.Publisher
	feed     *router.Feed
	presence *router.Presence
	// revocations are the sessions ended within the access token lifetime;
	// tickets make WebSocket tickets single-use across gateways.
	revocations    *router.Revocations
	tickets        *router.Tickets
	poller         netpoll.Poller
	pool           *workers.Pool // reads of readable connections
	accepts        *workers.Pool // handshakes: apart, so a busy read path never stalls new connections or /metrics
	writers        *workers.Pool // flushes of write queues
	auth           *authenticator
	throttle       *throttle              // failed logins and signups
	throttled      *prometheus.CounterVec // refusals by throttles and per-user limits
	hub            *hub
	users          *userCache
	m              *metrics
	log            *zap.Logger
	http           *http.Server
	httpLn         *chanListener
	handler        http.Handler
	allowedOrigins map[string]struct{} // Config.AllowedOrigins, normalized
	// onMessage acts on a complete client message: handleMessage, or in
	// the conformance suite's echo harness, an echo.
	onMessage func(c *Conn, msg []byte, at time.Time)

	reasm      reassembly // the bytes held for unfinished messages (reassembly.go)
	nextID     atomic.Uint64
	draining   atomic.Bool
	handshakes chan struct{} // a token per connection not yet upgraded or handed to net/http

	mu        sync.Mutex
	listeners []net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New builds a gateway. It joins presence, which asks the other gateways
// who is online, so it takes ctx.
func New(ctx context.Context, cfg Config, d Deps) (*Server, error) {
	cfg.setDefaults()
	if len(cfg.JWTSecret) < 16 {
		return nil, fmt.Errorf("gateway: JWT secret must be at least 16 bytes")
	}
	if err := cfg.validateLimits(); err != nil {
		return nil, err
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, nc: d.NATS, store: d.Store, pub: d.Publisher, log: d.Log, m: newMetrics(d.Registry)}
	s.onMessage = s.handleMessage
	s.throttled = newThrottledCounter(d.Registry)
	s.throttle = newThrottle(cfg.Throttle, s.throttled)
	s.allowedOrigins = originSet(cfg.AllowedOrigins)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.auth = newAuthenticator(&s.cfg)
	s.hub = newHub(s)
	s.handshakes = make(chan struct{}, cfg.MaxHandshakes)
	s.users = newUserCache(d.Store, 100_000)
	var err error
	if s.poller, err = netpoll.New(netpoll.Config{OnError: func(err error) { s.log.Error("poller", zap.Error(err)) }}); err != nil {
		return nil, fmt.Errorf("gateway: poller: %w", err)
	}
	s.pool = workers.New(workers.Config{Size: cfg.Workers, Queue: cfg.Queue})
	s.accepts = workers.New(workers.Config{Size: cfg.Workers, Queue: cfg.Queue})
	s.writers = workers.New(workers.Config{Size: cfg.Workers, Queue: 65536})
	s.feed = router.NewFeed(d.NATS, router.FeedConfig{
		Stream: d.Stream, Publisher: d.Publisher, Log: d.Log.Named("feed"),
		OnEvent: s.hub.onEvent, OnIdle: s.hub.wakeWriters, OnUserEvent: s.onUserEvent,
	})
	s.presence, err = router.NewPresence(ctx, d.NATS, router.PresenceConfig{Log: d.Log.Named("presence"), OnChange: s.onPresence})
	if err == nil {
		// Remembered past the token's expiry by the leeway tokens are
		// checked with, and a little more for clocks.
		s.revocations, err = router.NewRevocations(ctx, d.NATS, router.RevocationsConfig{
			Keep: cfg.TokenTTL + time.Minute, OnRevoke: s.onRevoke, Log: d.Log.Named("revocations"),
		})
		if err != nil {
			s.presence.Close()
		}
	}
	if err == nil {
		var js jetstream.JetStream
		if js, err = jetstream.New(d.NATS); err == nil {
			s.tickets, err = router.NewTickets(ctx, js, router.TicketsConfig{TTL: 2*cfg.TicketTTL + 10*time.Second, Replicas: cfg.TicketReplicas})
		}
		if err != nil {
			s.revocations.Close()
			s.presence.Close()
		}
	}
	if err != nil {
		s.feed.Close()
		s.pool.Close()
		s.accepts.Close()
		s.writers.Close()
		s.poller.Close()
		return nil, err
	}
	s.handler = s.routes()
	s.httpLn = newChanListener()
	s.http = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		_ = s.http.Serve(s.httpLn)
	}()
	go func() {
		defer s.wg.Done()
		s.keepalive()
	}()
	s.updateReady()
	return s, nil
}

// Handler is the HTTP side (API, health, metrics, web client, and /ws by
// hijacking), for tests and for embedding behind another listener.
func (s *Server) Handler() http.Handler { return s.handler }

// Ready reports whether the gateway can serve: NATS connected, not draining.
func (s *Server) Ready() bool {
	return !s.draining.Load() && s.nc.IsConnected() && (s.cfg.ReadyCheck == nil || s.cfg.ReadyCheck())
}

func (s *Server) updateReady() {
	if s.Ready() {
		s.m.ready.Set(1)
	} else {
		s.m.ready.Set(0)
	}
}

// Serve accepts connections on ln until Drain or Shutdown. WebSocket
// upgrades to /ws are read straight off the socket (no net/http buffers
// kept per connection); everything else goes to the HTTP server.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.ctx.Err() != nil || s.draining.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	var backoff time.Duration
	for {
		// At most MaxHandshakes connections between accept and upgrade:
		// beyond that accepting waits and a storm queues in the kernel's
		// backlog instead of in memory.
		select {
		case s.handshakes <- struct{}{}:
		case <-s.ctx.Done():
			return ErrServerClosed
		}
		raw, err := ln.Accept()
		if err != nil {
			<-s.handshakes
		}
		if err != nil {
			if s.ctx.Err() != nil || s.draining.Load() || errors.Is(err, net.ErrClosed) {
				return ErrServerClosed
			}
			// Out of file descriptors and the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept", zap.Error(err), zap.Duration("retry_in", backoff))
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		s.startHandshake(raw)
	}
}

// authenticate checks the credential of a WebSocket request: a one-time
// ?ticket=, an Authorization: Bearer header, or (as before tickets)
// ?token=.
func (s *Server) authenticate(ctx context.Context, query, authz string) (identity, error) {
	token, ticket := "", ""
	if q, err := url.ParseQuery(query); err == nil {
		token, ticket = q.Get("token"), q.Get("ticket")
	}
	if ticket != "" {
		id, err := s.redeemTicket(ctx, ticket)
		if err != nil {
			s.m.authFailures.WithLabelValues("ticket").Inc()
		}
		return id, err
	}
	if token == "" {
		token = bearer(authz)
	}
	id, err := s.verifyToken(token)
	if err != nil {
		s.m.authFailures.WithLabelValues("token").Inc()
		return identity{}, err
	}
	return id, nil
}

// serveHTTPUpgrade upgrades a /ws request that arrived through net/http:
// one on a kept-alive connection (a proxy with upstream keep-alive sends
// it after other requests), or with an absolute-form target. net/http
// hands over the connection it was given, which wraps the socket; the
// poller needs the socket itself, and the bytes already read past the
// request are the connection's first.
func (s *Server) serveHTTPUpgrade(w http.ResponseWriter, r *http.Request) {
	if status, msg := checkUpgrade(r); status != 0 {
		s.m.upgradeFailures.WithLabelValues(failBadRequest).Inc()
		if status == http.StatusUpgradeRequired {
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		writeError(w, status, errorCode(status), msg)
		return
	}
	if !s.originAllowed(r.Header.Get("Origin"), r.Host) {
		s.m.upgradeFailures.WithLabelValues(failOrigin).Inc()
		writeError(w, http.StatusForbidden, "forbidden", "origin not allowed")
		return
	}
	id, err := s.authenticate(r.Context(), r.URL.RawQuery, r.Header.Get("Authorization"))
	if err != nil {
		s.m.upgradeFailures.WithLabelValues(failUnauthorized).Inc()
		writeError(w, http.StatusUnauthorized, "unauthorized", "missing or invalid token")
		return
	}
	if s.draining.Load() {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "draining")
		return
	}
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		s.m.upgradeFailures.WithLabelValues(failBadRequest).Inc()
		if conn != nil {
			_ = conn.Close()
		}
		return
	}
	var pending []byte
	if rw != nil && rw.Reader.Buffered() > 0 {
		b, _ := rw.Reader.Peek(rw.Reader.Buffered())
		pending = append(pending, b...)
	}
	raw := conn
	if pc, ok := conn.(*prefixConn); ok {
		// Whatever of the prefix net/http did not read comes after what
		// its reader holds.
		pending = append(pending, pc.prefix...)
		raw = pc.Conn
	}
	_ = raw.SetDeadline(time.Time{})
	// The handler goroutine ends here; the connection lives on the poller.
	s.open(raw, id, pending)
}

// open turns an upgraded socket into a Conn: hello first, then the poller.
// pending holds bytes the client sent after its request: its first frames.
func (s *Server) open(raw net.Conn, id identity, pending []byte) {
	c := &Conn{
		s: s, id: s.nextID.Add(1), raw: raw, user: id.User, name: id.Name, session: id.Session, expires: id.Expires,
		limiter: rate.NewLimiter(rate.Limit(s.cfg.SendRate), s.cfg.SendBurst),
		holdAll: true,
	}
	if len(pending) > 0 {
		// Bytes the client sent behind its upgrade request, which net/http
		// had already read: the first of the connection's input.
		buf := append(make([]byte, 0, max(len(pending), inChunk)), pending...)
		c.in = &buf
	}
	c.flushFn = c.flush
	c.lastRead.Store(time.Now().UnixNano())
	s.m.connects.Inc()
	s.m.connections.Inc()
	if !s.hub.add(c) {
		s.throttled.WithLabelValues(throttleUserConnections).Inc()
		c.closeWith(statusTooManyConnections, reasonTooManyConnections, "too many connections")
		return
	}
	if s.draining.Load() {
		c.closeWith(statusDraining, reasonDrain, "server draining")
		return
	}
	// A revocation that arrived between the token check and hub.add found
	// no connection to close.
	if s.revocations.Revoked(c.session) {
		c.closeWith(statusTokenExpired, reasonRevoked, "session ended")
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	hello, convs, err := s.hello(ctx, c)
	cancel()
	if err != nil {
		s.log.Warn("hello failed", zap.Uint64("user", uint64(c.user)), zap.Error(err))
		c.closeWith(ws.StatusInternalServerError, reasonShutdown, "unavailable")
		return
	}
	for _, cv := range convs {
		s.hub.join(c, cv.ID, cv.Members)
	}
	c.sendHello(hello)
	s.watch(c)
}

// watch hands an open connection to the poller, after handling what
// arrived before it (c.in, from an upgrade through net/http): the poller
// only tells of bytes still in the socket.
func (s *Server) watch(c *Conn) {
	c.resumeFn = c.resumeReading
	if c.in != nil && len(*c.in) > 0 {
		fr := frameReaders.Get().(*frameReader)
		ok := c.handleInput(fr)
		frameReaders.Put(fr)
		if !ok || c.isReadPaused() {
			return // done, or paused: resumeReading watches it later
		}
	}
	// Watch hands the callback its Desc: the first frame may already be
	// waiting, so the callback can run before Watch returns.
	desc, err := s.poller.Watch(c.raw, func(d *netpoll.Desc, ev netpoll.Event) {
		if err := s.pool.Schedule(func() { c.onReadable(d, ev) }); err != nil {
			// Every worker busy and the queue full: read it on a goroutine
			// of its own rather than stall the poller or drop the client.
			go c.onReadable(d, ev)
		}
	})
	if err != nil {
		c.teardown(reasonReadError)
		return
	}
	c.mu.Lock()
	c.desc = desc
	c.mu.Unlock()
	if c.closed.Load() {
		_ = s.poller.Remove(desc)
	}
}

// scheduleRead resumes a connection's reading on the read pool.
func (s *Server) scheduleRead(fn func()) {
	if err := s.pool.Schedule(fn); err != nil {
		go fn()
	}
}

// scheduleWrite runs a connection's flush on the writer pool.
func (s *Server) scheduleWrite(fn func()) {
	if err := s.writers.Schedule(fn); err != nil {
		go fn()
	}
}

// keepalive pings silent connections, closes those that do not answer and
// those whose token expired. One goroutine for all connections.
func (s *Server) keepalive() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	ping := ws.MustCompileFrame(ws.NewPingFrame(nil))
	forget := time.NewTicker(time.Minute)
	defer forget.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-forget.C:
			// The publisher remembers each conversation's newest message;
			// drop those not sent to lately so the map stays bounded.
			s.pub.Forget(10 * time.Minute)
		case now := <-tick.C:
			s.updateReady()
			var pingConns, dead, expired, stalled []*Conn
			nowNS := now.UnixNano()
			s.hub.each(func(c *Conn) {
				switch {
				case !c.expires.IsZero() && now.After(c.expires):
					expired = append(expired, c)
				case c.partialSince.Load() != 0 && nowNS-c.partialSince.Load() > int64(s.cfg.ReadTimeout):
					stalled = append(stalled, c)
				case c.pingAt.Load() != 0:
					if nowNS-c.pingAt.Load() > int64(s.cfg.PongTimeout) {
						dead = append(dead, c)
					}
				case nowNS-c.lastRead.Load() > int64(s.cfg.PingInterval):
					c.pingAt.Store(nowNS)
					pingConns = append(pingConns, c)
				}
			})
			for _, c := range pingConns {
				c.send(ping, "ping")
			}
			for _, c := range dead {
				c.closeWith(ws.StatusGoingAway, reasonPingTimeout, "ping timeout")
			}
			for _, c := range expired {
				c.closeWith(statusTokenExpired, reasonTokenExpired, "token expired")
			}
			for _, c := range stalled {
				// Half a frame, or a fragmented message, for ReadTimeout:
				// what a read deadline per frame did, without a worker
				// waiting for it.
				c.closeWith(ws.StatusPolicyViolation, reasonReadError, "message not finished in time")
			}
		}
	}
}

// Drain makes the gateway unready, stops accepting, and closes every
// connection with 4002 spread over cfg.Drain so that clients reconnect
// elsewhere gradually. It returns when all are closed or ctx ends.
func (s *Server) Drain(ctx context.Context) error {
	if !s.draining.CompareAndSwap(false, true) {
		return nil
	}
	s.m.draining.Set(1)
	s.updateReady()
	s.mu.Lock()
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	s.mu.Unlock()
	conns := s.hub.snapshot()
	const step = 50 * time.Millisecond
	steps := int(s.cfg.Drain / step)
	if steps < 1 {
		steps = 1
	}
	tick := time.NewTicker(step)
	defer tick.Stop()
	for i := 0; i < steps && len(conns) > 0; i++ {
		batch := (len(conns) + (steps - i) - 1) / (steps - i)
		for _, c := range conns[:batch] {
			c.closeWith(statusDraining, reasonDrain, "server draining")
		}
		conns = conns[batch:]
		if len(conns) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	// Wait for the close frames to go out.
	for s.hub.count() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// Shutdown closes everything at once and waits for the gateway's
// goroutines. Safe to call twice; call Drain first for a graceful stop.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		s.draining.Store(true)
		s.m.ready.Set(0)
		s.mu.Lock()
		for _, ln := range s.listeners {
			_ = ln.Close()
		}
		s.mu.Unlock()
		s.cancel()
		s.httpLn.Close()
		err = s.http.Shutdown(ctx)
		for _, c := range s.hub.snapshot() {
			c.teardown(reasonShutdown)
		}
		s.presence.Close()
		s.revocations.Close()
		s.feed.Close()
		s.accepts.Close()
		s.pool.Close()
		s.writers.Close()
		_ = s.poller.Close()
		s.wg.Wait()
	})
	return err
}
