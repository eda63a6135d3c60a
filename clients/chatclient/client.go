// Package chatclient is a Go client of the chat cluster's protocol v1
// (docs/PROTOCOL.md) for bots, integrations and tests: Dial with a token,
// send with a client_id and wait for the ack, history, read marks, typing;
// it reconnects with backoff and jitter, catches up after every hello
// (`history after` the newest known ID, page by page, per conversation),
// resends unacked sends with their same client_id, and delivers each
// message once. It speaks the wire protocol only: it imports none of the
// server's packages.
package chatclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Defaults of Config's zero values.
const (
	DefaultMinBackoff     = 500 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultRequestTimeout = 15 * time.Second
	DefaultPingEvery      = 25 * time.Second
	// DefaultSendTries is how often a send refused with rate_limited or
	// unavailable is tried in all before it fails.
	DefaultSendTries = 4
	// catchUpLimit is the page size of catch-up: the server's maximum.
	catchUpLimit = 200
	// readLimit bounds one frame from the server (a hello lists up to 1,000
	// conversations with their members).
	readLimit = 16 << 20
	// seenPerConversation bounds the IDs remembered to deliver each message once.
	seenPerConversation = 10000
)

// Config configures a Client. Only BaseURL and Token are required.
type Config struct {
	// BaseURL is the server's origin, e.g. "http://127.0.0.1:8080".
	BaseURL string
	// Token is the bearer token from Signup or Login.
	Token string
	// RefreshToken (optional) is the refresh token from Signup or Login:
	// the access token is then renewed before it expires and when refused,
	// the WebSocket is opened with a single-use ticket, and OnAuthExpired
	// means the session itself ended. Without it the client stops when its
	// access token expires (15 minutes by default).
	RefreshToken string
	// ExpiresIn is how long Token lasts from now (Auth.ExpiresIn seconds);
	// zero: unknown, renewed when refused.
	ExpiresIn time.Duration
	// OnTokens is called with every renewed pair: persist it to survive a
	// restart. Called from the client's goroutines; keep it short.
	OnTokens func(Tokens)
	// HTTPClient makes HTTP calls and the WebSocket handshake; default
	// http.DefaultClient.
	HTTPClient *http.Client
	// OnMessage is called once per message ID: live, acked, or fetched by
	// catch-up. Calls come one at a time, from the client's goroutines: keep
	// it short, and do not call the Client's blocking methods from it.
	OnMessage func(Message)
	// OnEvent is called for read, typing, presence and conversation frames,
	// in the same way as OnMessage.
	OnEvent func(Event)
	// OnAuthExpired is called once when the server refuses the token (close
	// code 4001 or HTTP 401 at a reconnect) and no refresh cures it; the
	// client then stops.
	OnAuthExpired func()
	// MinBackoff and MaxBackoff bound the reconnect delay: it starts at
	// MinBackoff (default 500 ms), doubles to MaxBackoff (default 30 s), and
	// each delay is drawn between half and all of that, so that clients
	// dropped together do not return together. 4002 (draining) reconnects
	// within a second.
	MinBackoff, MaxBackoff time.Duration
	// RequestTimeout bounds a request's wait for its answer (default 15 s)
	// when the caller's context has no earlier deadline.
	RequestTimeout time.Duration
	// PingEvery is how often an application ping checks the link (default
	// 25 s); an unanswered ping drops the connection, which reconnects.
	PingEvery time.Duration
	// SendTries: see DefaultSendTries.
	SendTries int
}

// Client is a connection to the chat cluster that stays up: it reconnects
// until Close. Its methods are safe for concurrent use.
type Client struct {
	cfg    Config
	http   *http.Client
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the run loop and what it starts

	closeOnce sync.Once
	deliverMu sync.Mutex // OnMessage and OnEvent one at a time

	mu       sync.Mutex
	sess     *session // nil while disconnected
	me       User
	seq      uint64
	waiting  map[string]chan *serverFrame // request id -> its answer (nil: disconnected)
	sendReqs map[string]string            // request id of a send -> client_id
	outbox   map[string]*pending          // client_id -> unacked send
	order    []string                     // client_ids in the order they were sent
	newest   map[string]string            // conversation -> newest ID from message or history frames
	seen     map[string]*seenIDs          // conversation -> delivered IDs
	closed   bool
	expired  bool
	// ended: a refresh was refused; loggingOut: Logout is ending the session.
	ended, loggingOut bool

	tok         tokens
	refreshKick chan struct{} // the expiry moved (buffered 1)
}

// session is one WebSocket connection, from its hello to its loss.
type session struct {
	conn *websocket.Conn
	ctx  context.Context // ends when the connection is lost
	wg   sync.WaitGroup  // catch-ups and retries of this connection
}

type pending struct {
	clientID, conv, body string
	sentOn               *session // the connection it was last sent on
	tries                int
	done                 chan struct{}
	msg                  Message
	err                  error
}

// Dial connects, waits for the server's hello, and keeps the connection up
// (reconnecting with backoff) until Close. A refused token is
// ErrUnauthorized.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.BaseURL == "" || cfg.Token == "" {
		return nil, fmt.Errorf("chatclient: Dial needs BaseURL and Token: %w", ErrBadRequest)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.PingEvery <= 0 {
		cfg.PingEvery = DefaultPingEvery
	}
	if cfg.SendTries <= 0 {
		cfg.SendTries = DefaultSendTries
	}
	c := &Client{
		cfg:      cfg,
		http:     cfg.HTTPClient,
		waiting:  make(map[string]chan *serverFrame),
		sendReqs: make(map[string]string),
		outbox:   make(map[string]*pending),
		newest:   make(map[string]string),
		seen:     make(map[string]*seenIDs),
	}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	c.tok.token, c.tok.refresh, c.tok.ttl = cfg.Token, cfg.RefreshToken, cfg.ExpiresIn
	if cfg.ExpiresIn > 0 {
		c.tok.expiresAt = time.Now().Add(cfg.ExpiresIn)
	}
	c.refreshKick = make(chan struct{}, 1)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	conn, hello, err := c.connect(ctx)
	if errors.Is(err, ErrUnauthorized) && c.renewAfterRefusal(c.Token()) {
		conn, hello, err = c.connect(ctx)
	}
	if err != nil {
		c.cancel()
		return nil, err
	}
	if c.hasSession() {
		c.wg.Add(1)
		go c.refresher()
	}
	c.wg.Add(1)
	go c.run(conn, hello)
	return c, nil
}

// Me is the signed-in user, from the latest hello.
func (c *Client) Me() User {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.me
}

// Connected reports whether a connection is up (its hello arrived).
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess != nil
}

// Close stops the client: the connection is closed, every goroutine it
// started has returned when Close does, and sends still waiting for their
// ack fail with ErrClosed. Safe to call more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		s := c.sess
		c.mu.Unlock()
		if s != nil {
			// Outside the lock: the close handshake needs the read loop,
			// which takes the lock for every frame.
			_ = s.conn.Close(websocket.StatusNormalClosure, "bye")
		}
		c.cancel()
		c.wg.Wait()
		c.failOutbox(ErrClosed)
	})
	return nil
}

// connect dials /ws and reads the hello.
func (c *Client) connect(ctx context.Context) (*websocket.Conn, *serverFrame, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	u, header, _, err := c.wsURL(dctx)
	if err != nil {
		if errors.Is(err, ErrUnauthorized) {
			return nil, nil, fmt.Errorf("chatclient: the server refused the token: %w", err)
		}
		return nil, nil, fmt.Errorf("chatclient: ws ticket: %w: %w", ErrDisconnected, err)
	}
	conn, res, err := websocket.Dial(dctx, u, &websocket.DialOptions{
		HTTPClient: c.http,
		HTTPHeader: header,
	})
	if res != nil && res.Body != nil {
		_ = res.Body.Close()
	}
	if err != nil {
		if res != nil && res.StatusCode == http.StatusUnauthorized {
			return nil, nil, fmt.Errorf("chatclient: the server refused the token: %w", ErrUnauthorized)
		}
		return nil, nil, fmt.Errorf("chatclient: dial %s: %w: %w", strings.SplitN(u, "?", 2)[0], ErrDisconnected, err)
	}
	conn.SetReadLimit(readLimit)
	f, err := readFrame(dctx, conn)
	if err == nil && f.Type != FrameHello {
		err = fmt.Errorf("first frame is %q, not hello", f.Type)
	}
	if err != nil {
		conn.CloseNow()
		if websocket.CloseStatus(err) == CloseTokenExpired {
			return nil, nil, fmt.Errorf("chatclient: %w", ErrUnauthorized)
		}
		return nil, nil, fmt.Errorf("chatclient: waiting for hello: %w: %w", ErrDisconnected, err)
	}
	return conn, f, nil
}

func readFrame(ctx context.Context, conn *websocket.Conn) (*serverFrame, error) {
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return nil, err
		}
		if typ != websocket.MessageText {
			continue
		}
		var f serverFrame
		if json.Unmarshal(data, &f) != nil || f.Type == "" {
			continue // not a frame of this protocol: ignored, as clients must
		}
		return &f, nil
	}
}

// run keeps a connection up until Close or an expired token.
func (c *Client) run(conn *websocket.Conn, hello *serverFrame) {
	defer c.wg.Done()
	attempt := 0
	for {
		var delay time.Duration
		if conn != nil {
			used := c.Token()
			code := c.serve(conn, hello)
			attempt = 0
			if c.sessionEnded() {
				c.authExpired()
				return
			}
			if code == CloseTokenExpired {
				// Expired or ended: a refresh tells which.
				if !c.renewAfterRefusal(used) || c.sessionEnded() {
					c.authExpired()
					return
				}
				delay = time.Millisecond // renewed: back at once
			}
			if code == CloseDraining {
				delay = time.Duration(50+mrand.IntN(950)) * time.Millisecond
			}
		}
		if delay == 0 {
			delay = c.backoff(attempt)
			attempt++
		}
		t := time.NewTimer(delay)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		var err error
		used := c.Token()
		conn, hello, err = c.connect(c.ctx)
		if errors.Is(err, ErrUnauthorized) && (!c.renewAfterRefusal(used) || c.sessionEnded()) {
			c.authExpired()
			return
		}
		if err != nil {
			conn = nil
		}
	}
}

// backoff is the delay before reconnect attempt n (0-based): between half
// and all of min*2^n, capped at max.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.MinBackoff
	for i := 0; i < n && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.cfg.MaxBackoff)
	return d/2 + mrand.N(d/2+1)
}

// sessionEnded reports a refused refresh (or a logout in progress).
func (c *Client) sessionEnded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended || c.loggingOut
}

func (c *Client) authExpired() {
	c.mu.Lock()
	if c.loggingOut {
		// Logging out is no expiry: Close follows and fails what is left
		// with ErrClosed.
		c.mu.Unlock()
		return
	}
	c.expired = true
	c.mu.Unlock()
	c.failOutbox(ErrUnauthorized)
	if c.cfg.OnAuthExpired != nil {
		c.cfg.OnAuthExpired()
	}
}

type catchUpPlan struct{ conv, after string }

// serve runs one connection from its hello until it is lost, and returns
// the close code.
func (c *Client) serve(conn *websocket.Conn, hello *serverFrame) websocket.StatusCode {
	ctx, cancel := context.WithCancel(c.ctx)
	s := &session{conn: conn, ctx: ctx}
	plan := c.applyHello(s, hello)
	for _, p := range plan {
		c.goCatchUp(s, p)
	}
	c.flushOutbox(s)
	s.wg.Add(1)
	go c.pinger(s)
	err := c.readLoop(s)
	cancel()
	conn.CloseNow()
	c.mu.Lock()
	c.sess = nil
	for id, ch := range c.waiting {
		ch <- nil // buffered: never blocks
		delete(c.waiting, id)
	}
	clear(c.sendReqs)
	c.mu.Unlock()
	s.wg.Wait()
	return websocket.CloseStatus(err)
}

// applyHello makes the connection current and plans the catch-up: every
// conversation is followed from the newest ID known (for one seen for the
// first time, from its last message, or from the start).
func (c *Client) applyHello(s *session, f *serverFrame) []catchUpPlan {
	var me User
	_ = json.Unmarshal(f.User, &me)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sess = s
	if me.ID != "" {
		c.me = me
	}
	for _, conv := range f.Conversations {
		if _, ok := c.newest[conv.ID]; !ok {
			c.newest[conv.ID] = "0"
			if conv.LastMessage != nil {
				c.newest[conv.ID] = conv.LastMessage.ID
			}
		}
	}
	plan := make([]catchUpPlan, 0, len(c.newest))
	for conv, after := range c.newest {
		plan = append(plan, catchUpPlan{conv, after})
	}
	return plan
}

func (c *Client) goCatchUp(s *session, p catchUpPlan) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.catchUp(s.ctx, p)
	}()
}

// catchUp pages through `history after` until the server says nothing
// newer remains. A lost connection ends it: the next hello plans anew.
func (c *Client) catchUp(ctx context.Context, p catchUpPlan) {
	cursor := p.after
	for {
		page, err := c.History(ctx, p.conv, HistoryQuery{After: cursor, Limit: catchUpLimit})
		if errors.Is(err, ErrNotFound) {
			c.mu.Lock()
			delete(c.newest, p.conv)
			c.mu.Unlock()
			return
		}
		if err != nil {
			return
		}
		for _, m := range page.Messages {
			c.deliver(m, false)
		}
		if page.NextAfter == nil {
			return
		}
		cursor = *page.NextAfter
	}
}

func (c *Client) pinger(s *session) {
	defer s.wg.Done()
	t := time.NewTicker(c.cfg.PingEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		_, err := c.request(pctx, clientFrame{Type: framePing})
		cancel()
		if err != nil && s.ctx.Err() == nil {
			s.conn.CloseNow() // the read loop ends and the client reconnects
			return
		}
	}
}

func (c *Client) readLoop(s *session) error {
	for {
		f, err := readFrame(s.ctx, s.conn)
		if err != nil {
			return err
		}
		c.dispatch(s, f)
	}
}

func (c *Client) dispatch(s *session, f *serverFrame) {
	id := f.requestID()
	if id != "" && f.Type != FrameMessage {
		c.mu.Lock()
		clientID, isSend := c.sendReqs[id]
		delete(c.sendReqs, id)
		ch := c.waiting[id]
		delete(c.waiting, id)
		c.mu.Unlock()
		if isSend {
			c.sendAnswered(s, clientID, f)
			return
		}
		if ch != nil {
			ch <- f
			return
		}
	}
	switch f.Type {
	case FrameMessage:
		var m Message
		if json.Unmarshal(f.Message, &m) == nil && m.ID != "" {
			c.deliver(m, false)
		}
	case FrameRead, FrameTyping, FramePresence:
		ev := Event{Type: f.Type, MessageID: f.MessageID, Online: f.Online}
		_ = json.Unmarshal(f.Conversation, &ev.Conversation)
		_ = json.Unmarshal(f.User, &ev.User)
		c.emit(ev)
	case FrameConversation:
		var conv Conversation
		if json.Unmarshal(f.Conversation, &conv) != nil || conv.ID == "" {
			return
		}
		c.mu.Lock()
		_, known := c.newest[conv.ID]
		if !known {
			c.newest[conv.ID] = "0"
		}
		c.mu.Unlock()
		if !known {
			// Followed from its first message: one stored before this
			// connection learnt of the conversation is fetched.
			c.goCatchUp(s, catchUpPlan{conv.ID, "0"})
		}
		c.emit(Event{Type: f.Type, Conversation: conv.ID, Changed: &conv})
	}
}

// deliver hands a message to OnMessage unless it was delivered before, and
// settles the outbox entry it answers. An ack's message does not move the
// catch-up cursor: an ack can arrive before an older message of another
// member.
func (c *Client) deliver(m Message, fromAck bool) {
	c.deliverMu.Lock()
	defer c.deliverMu.Unlock()
	c.mu.Lock()
	s := c.seen[m.Conversation]
	if s == nil {
		s = &seenIDs{max: seenPerConversation}
		c.seen[m.Conversation] = s
	}
	isNew := s.add(m.ID)
	if !fromAck {
		if n, ok := c.newest[m.Conversation]; !ok || CompareIDs(m.ID, n) > 0 {
			c.newest[m.Conversation] = m.ID
		}
	}
	var settled *pending
	if m.Sender == c.me.ID && m.ClientID != "" {
		if p := c.outbox[m.ClientID]; p != nil && p.conv == m.Conversation {
			settled = p
			c.dropPending(p)
		}
	}
	c.mu.Unlock()
	if settled != nil {
		settled.msg = m
		close(settled.done)
	}
	if isNew && c.cfg.OnMessage != nil {
		c.cfg.OnMessage(m)
	}
}

func (c *Client) emit(ev Event) {
	if c.cfg.OnEvent == nil {
		return
	}
	c.deliverMu.Lock()
	defer c.deliverMu.Unlock()
	c.cfg.OnEvent(ev)
}

// ------------------------------------------------------------ requests

// write sends one frame on the current connection.
func (c *Client) write(ctx context.Context, f clientFrame) error {
	c.mu.Lock()
	s := c.sess
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if s == nil {
		return ErrDisconnected
	}
	return c.writeOn(ctx, s, f)
}

func (c *Client) writeOn(ctx context.Context, s *session, f clientFrame) error {
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	if err := s.conn.Write(wctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("chatclient: %w: %w", ErrDisconnected, err)
	}
	return nil
}

func (c *Client) nextID(prefix string) string {
	c.seq++
	return prefix + strconv.FormatUint(c.seq, 10)
}

// request sends a frame with a fresh id and waits for the answer with it.
func (c *Client) request(ctx context.Context, f clientFrame) (*serverFrame, error) {
	c.mu.Lock()
	s := c.sess
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if s == nil {
		c.mu.Unlock()
		return nil, ErrDisconnected
	}
	f.ID = c.nextID("q")
	ch := make(chan *serverFrame, 1)
	c.waiting[f.ID] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.waiting, f.ID)
		c.mu.Unlock()
	}
	if err := c.writeOn(ctx, s, f); err != nil {
		forget()
		return nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	select {
	case r := <-ch:
		if r == nil {
			return nil, fmt.Errorf("chatclient: %s: %w", f.Type, ErrDisconnected)
		}
		if r.Type == FrameError {
			return nil, frameError(r)
		}
		return r, nil
	case <-tctx.Done():
		forget()
		return nil, fmt.Errorf("chatclient: %s: %w", f.Type, tctx.Err())
	}
}

// History asks one page of a conversation's history over the WebSocket.
func (c *Client) History(ctx context.Context, conv string, q HistoryQuery) (HistoryPage, error) {
	r, err := c.request(ctx, clientFrame{Type: frameHistory, Conversation: conv, Before: q.Before, After: q.After, Limit: q.Limit})
	if err != nil {
		return HistoryPage{}, err
	}
	return HistoryPage{Messages: r.Messages, NextBefore: r.NextBefore, NextAfter: r.NextAfter}, nil
}

// Read moves the user's read mark in a conversation to messageID.
func (c *Client) Read(ctx context.Context, conv, messageID string) error {
	return c.write(ctx, clientFrame{Type: frameRead, Conversation: conv, MessageID: messageID})
}

// Typing tells the other members that the user is typing; send it at most
// every few seconds.
func (c *Client) Typing(ctx context.Context, conv string) error {
	return c.write(ctx, clientFrame{Type: frameTyping, Conversation: conv})
}

// Ping asks the server for a pong.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.request(ctx, clientFrame{Type: framePing})
	return err
}

// ------------------------------------------------------------ sending
