package chatclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"
)

// Sends and the outbox: a send waits for its ack across reconnects; what
// was not acked is sent again, with the same client_id, on the next
// connection.

// NewClientID returns a fresh client_id.
func NewClientID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "g" + hex.EncodeToString(b[:])
}

// Send sends a message with a fresh client_id and waits for its ack; see
// SendWithClientID.
func (c *Client) Send(ctx context.Context, conv, body string) (Message, error) {
	return c.SendWithClientID(ctx, conv, NewClientID(), body)
}

// SendWithClientID sends a message and waits until the server acks it,
// across reconnects: an unacked send is resent with the same client_id
// after every hello, and the server stores it once. It fails with the
// server's refusal (e.g. ErrInvalidMessage), with ErrRateLimited or
// ErrUnavailable after SendTries tries, with ErrClosed or ErrUnauthorized,
// or with ctx's error; a send abandoned that way may still have been
// stored.
func (c *Client) SendWithClientID(ctx context.Context, conv, clientID, body string) (Message, error) {
	c.mu.Lock()
	if c.closed || c.expired {
		c.mu.Unlock()
		if c.expired {
			return Message{}, ErrUnauthorized
		}
		return Message{}, ErrClosed
	}
	p := c.outbox[clientID]
	if p == nil {
		p = &pending{clientID: clientID, conv: conv, body: body, done: make(chan struct{})}
		c.outbox[clientID] = p
		c.order = append(c.order, clientID)
	}
	s := c.sess
	c.mu.Unlock()
	if s != nil {
		c.sendPending(s, p)
	}
	select {
	case <-p.done:
		return p.msg, p.err
	case <-ctx.Done():
		c.mu.Lock()
		if c.outbox[clientID] == p {
			c.dropPending(p)
		}
		c.mu.Unlock()
		return Message{}, ctx.Err()
	}
}

// sendPending writes a send frame for p on s unless it was sent there already.
func (c *Client) sendPending(s *session, p *pending) {
	c.mu.Lock()
	if c.outbox[p.clientID] != p || p.sentOn == s || c.sess != s {
		c.mu.Unlock()
		return
	}
	p.sentOn = s
	id := c.nextID("s")
	c.sendReqs[id] = p.clientID
	c.mu.Unlock()
	// A failed write means a lost connection: the next hello resends.
	_ = c.writeOn(s.ctx, s, clientFrame{Type: frameSend, ID: id, Conversation: p.conv, ClientID: p.clientID, Body: p.body})
}

// flushOutbox resends every unacked send, in the order first sent.
func (c *Client) flushOutbox(s *session) {
	c.mu.Lock()
	list := make([]*pending, 0, len(c.order))
	for _, id := range c.order {
		list = append(list, c.outbox[id])
	}
	c.mu.Unlock()
	for _, p := range list {
		c.sendPending(s, p)
	}
}

// sendAnswered handles the answer to a send: an ack settles it, a
// retryable error sends it again after a while, another error fails it.
func (c *Client) sendAnswered(s *session, clientID string, f *serverFrame) {
	if f.Type == FrameAck {
		var m Message
		if json.Unmarshal(f.Message, &m) == nil && m.ID != "" {
			c.deliver(m, true)
		}
		return
	}
	c.mu.Lock()
	p := c.outbox[clientID]
	if p == nil {
		c.mu.Unlock()
		return
	}
	err := frameError(f)
	p.tries++
	retry := (errors.Is(err, ErrRateLimited) || errors.Is(err, ErrUnavailable)) && p.tries < c.cfg.SendTries
	if retry {
		p.sentOn = nil
	} else {
		c.dropPending(p)
	}
	c.mu.Unlock()
	if !retry {
		p.err = err
		close(p.done)
		return
	}
	delay := c.backoff(p.tries - 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-s.ctx.Done():
		case <-t.C:
			c.sendPending(s, p)
		}
	}()
}

// dropPending removes p from the outbox; c.mu is held.
func (c *Client) dropPending(p *pending) {
	delete(c.outbox, p.clientID)
	for i, id := range c.order {
		if id == p.clientID {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

func (c *Client) failOutbox(err error) {
	c.mu.Lock()
	list := make([]*pending, 0, len(c.outbox))
	for _, id := range c.order {
		list = append(list, c.outbox[id])
	}
	clear(c.outbox)
	c.order = nil
	c.mu.Unlock()
	for _, p := range list {
		p.err = err
		close(p.done)
	}
}

// Outbox lists the client_ids of sends not acked yet, in the order sent.
func (c *Client) Outbox() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.order...)
}
