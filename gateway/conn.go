package gateway

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/gateway/netpoll"
	"github.com/gobwas/ws"
	"golang.org/x/time/rate"
)

// Conn is one client's WebSocket connection. While idle it holds no
// goroutine and no buffer: the poller wakes a worker when bytes arrive, and
// frames to send wait in a queue that is nil when empty.
type Conn struct {
	s       *Server
	id      uint64
	raw     net.Conn
	desc    *netpoll.Desc
	user    chat.ID
	name    string
	session chat.ID // the session whose revocation closes this connection
	expires time.Time
	limiter *rate.Limiter
	// userLimit is shared with the user's other connections (set by hub.add).
	userLimit *userLimit
	flushFn   func() // c.flush, made once: a method value allocates each time
	resumeFn  func() // c.resumeReading, made once

	lastRead atomic.Int64 // unix nanos of the last bytes read
	pingAt   atomic.Int64 // when an unanswered ping was sent, 0 if none

	// out holds frames taken from the queue and not yet fully written;
	// owned by the one flush running at a time.
	out [][]byte

	// Read state, owned by the one worker reading at a time.
	in       *[]byte // bytes of a frame not fully arrived; nil when none
	frag     []byte  // a fragmented message being reassembled
	fragging bool
	utf8     utf8State // where the text message being read is in UTF-8
	// partialOff is how many payload bytes of the frame still arriving in
	// c.in have been checked for UTF-8, and partialUTF8 the state after
	// them (checkPartial).
	partialOff  int
	partialUTF8 utf8State
	// partialSince is when the incomplete frame in c.in, or the
	// fragmented message being reassembled, began to arrive (unix nanos, 0
	// if none): keepalive closes a client that never finishes one within
	// ReadTimeout.
	partialSince atomic.Int64
	// charged is what the buffers above are charged to the gateway's
	// reassembly budget (reassembly.go); heldClosed after teardown.
	charged atomic.Int64

	mu          sync.Mutex
	queue       [][]byte
	queuedBytes int
	flushing    bool
	closing     bool                // no more frames are queued
	closeFrame  []byte              // written after the queue, then the socket closes
	convs       map[string]struct{} // the conversations it is in: the hub's, changed only by hub methods
	closeReason string
	// held holds back deliveries of conversations the user was just added
	// to until the conversation frame, rendered off the dispatcher, has been
	// queued: a client never sees a message of a conversation it does not
	// know yet. nil almost always.
	held map[string]*heldConv
	// holdAll holds back every delivery until hello is queued: hello must
	// be the first frame, yet the connection subscribes before sending it
	// so that nothing sent after hello is missed.
	holdAll bool
	heldAll heldConv
	slow    bool // the queue overflowed: close as a slow consumer
	// readPaused: reading stopped with the queue half full (handleInput);
	// the writer resumes it once it takes the queue.
	readPaused bool

	closed atomic.Bool
}

// Close codes of our own (PROTOCOL.md): 1013 is RFC 6455's "try again
// later", which gobwas/ws does not name.
const (
	statusTryAgainLater ws.StatusCode = 1013
	statusTokenExpired  ws.StatusCode = 4001
	statusDraining      ws.StatusCode = 4002
)

// onReadable runs on a worker when the poller says the socket has data. It
// reads what the socket holds, handles every complete frame, keeps the
// bytes of an incomplete one in c.in and re-arms the poller: it never waits
// for a client, so a client that sends part of a frame holds no worker.
func (c *Conn) onReadable(d *netpoll.Desc, ev netpoll.Event) {
	fr := frameReaders.Get().(*frameReader)
	defer frameReaders.Put(fr)
	// A bounded number of reads per wake-up: a client that sends without
	// pause is re-armed and waits its turn like everyone else.
	for i := 0; ; i++ {
		first := i == 0
		if i == maxReadsPerWake {
			break
		}
		if c.in == nil {
			c.in = inPool.Get().(*[]byte)
		}
		in := *c.in
		if cap(in)-len(in) < inChunk/2 {
			if !c.charge(reassemblyCost(len(in)+inChunk, cap(c.frag))) {
				c.closeWith(errReassemblyFull.code, errReassemblyFull.reason, errReassemblyFull.text)
				return
			}
			in = growInput(in, len(in)+inChunk)
		}
		n, err := readNonblock(c.raw, in[len(in):cap(in)], first)
		in = in[:len(in)+n]
		*c.in = in
		if n > 0 {
			c.lastRead.Store(time.Now().UnixNano())
			c.pingAt.Store(0) // any traffic proves the client alive
			if !c.handleInput(fr) || c.isReadPaused() {
				return // done, or paused: the writer resumes reading
			}
		}
		if err != nil {
			if errors.Is(err, errWouldBlock) {
				break
			}
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				c.teardown(reasonClientClose)
			} else {
				c.teardown(reasonReadError)
			}
			return
		}
	}
	c.releaseInput()
	if err := c.s.poller.Resume(d); err != nil {
		c.teardown(reasonReadError)
	}
}

// resumeReading carries on with a connection whose reading paused (see
// handleInput): the frames already read first, then the socket.
func (c *Conn) resumeReading() {
	c.mu.Lock()
	d := c.desc
	c.mu.Unlock()
	if c.closed.Load() {
		return
	}
	if d == nil {
		c.s.watch(c) // paused before it was first watched
		return
	}
	if c.in != nil && len(*c.in) > 0 {
		fr := frameReaders.Get().(*frameReader)
		ok := c.handleInput(fr)
		frameReaders.Put(fr)
		if !ok || c.isReadPaused() {
			return
		}
	}
	c.onReadable(d, 0)
}

// maxReadsPerWake bounds the reads of one wake-up (of inChunk or more).
const maxReadsPerWake = 16

// handleInput handles every complete frame at the start of c.in and keeps
// the rest. It returns false when the connection is done.
func (c *Conn) handleInput(fr *frameReader) bool {
	in := *c.in
	off := 0
	paused := false
	for {
		span, ok := frameSpan(in[off:], c.s.cfg.MaxMessage)
		if !ok {
			break
		}
		// A client that sends requests faster than it reads the answers
		// would overflow its own queue: reading pauses while the queue is
		// half full, the rest waiting here, and the writer resumes it. The
		// socket is not read meanwhile, so TCP slows the client down.
		if paused = c.pauseReading(); paused {
			break
		}
		msg, at, err := c.readFrame(fr.reset(in[off : off+span]))
		off += span
		if err == nil && msg != nil {
			c.s.onMessage(c, msg, at)
		}
		if err != nil {
			var ec *errClose
			switch {
			case errors.Is(err, errCloseReceived):
				// The reply is queued; the writer tears down.
			case errors.As(err, &ec):
				c.closeWith(ec.code, ec.reason, ec.text)
			default:
				c.teardown(reasonReadError)
			}
			return false
		}
		if c.closed.Load() {
			return false
		}
	}
	if off > 0 {
		c.partialOff = 0 // what is left starts a new frame
	}
	rest := copy(in, in[off:])
	in = in[:rest]
	if rest > 0 && !paused {
		// A new frame starts the clock, unless it continues a fragmented
		// message: the whole message has ReadTimeout, or a client could
		// hold its fragments (and the reassembly budget) for ever.
		if c.partialSince.Load() == 0 || off > 0 && !c.fragging {
			c.partialSince.Store(time.Now().UnixNano())
		}
		if err := c.checkPartial(in); err != nil {
			var ec *errClose
			errors.As(err, &ec)
			c.closeWith(ec.code, ec.reason, ec.text)
			return false
		}
		// The frame being read needs room for all of it.
		if span, _ := frameSpan(in, c.s.cfg.MaxMessage); span > cap(in) {
			if !c.charge(reassemblyCost(span, cap(c.frag))) {
				*c.in = in
				c.closeWith(errReassemblyFull.code, errReassemblyFull.reason, errReassemblyFull.text)
				return false
			}
			in = growInput(in, span)
		}
	} else if c.fragging && !paused {
		if c.partialSince.Load() == 0 {
			c.partialSince.Store(time.Now().UnixNano()) // a fragmented message began
		}
	} else {
		c.partialSince.Store(0) // nothing half-sent, or paused by us
	}
	*c.in = in
	return true
}

// pauseReading reports whether the queue is half full, and if so marks
// reading paused for the writer to resume (in flush).
func (c *Conn) pauseReading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || len(c.queue) < c.s.cfg.WriteQueue/2 && c.queuedBytes < c.s.cfg.WriteQueueBytes/2 {
		return false
	}
	c.readPaused = true
	return true
}

func (c *Conn) isReadPaused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readPaused
}

// growInput returns b with room for n bytes, keeping its contents.
func growInput(b []byte, n int) []byte {
	if n <= cap(b) {
		return b
	}
	nb := make([]byte, len(b), n)
	copy(nb, b)
	return nb
}

// releaseInput gives the input buffer back when no partial frame is in it,
// so an idle connection holds none.
func (c *Conn) releaseInput() {
	if c.in == nil || len(*c.in) > 0 {
		return
	}
	if cap(*c.in) == inChunk {
		*c.in = (*c.in)[:0]
		inPool.Put(c.in)
	}
	c.in = nil
	c.chargeHeld()
}

type heldConv struct {
	holds  int
	frames [][]byte
	types  []string
}

// deliver queues a fan-out frame of conv, or holds it back while conv's
// conversation frame is pending (see Conn.held).
func (c *Conn) deliver(conv string, frame []byte, typ string) {
	if c.deliverLater(conv, frame, typ) {
		c.s.scheduleWrite(c.flushFn)
	}
}

// deliverLater is deliver without waking the writer: it reports whether the
// caller must (see hub.wakeWriters). Until then no other frame wakes it.
func (c *Conn) deliverLater(conv string, frame []byte, typ string) (wake bool) {
	c.mu.Lock()
	if h := c.held[conv]; h != nil {
		h.frames = append(h.frames, frame)
		h.types = append(h.types, typ)
		c.mu.Unlock()
		return false
	}
	ok, start := c.queueLocked(frame, typ)
	c.mu.Unlock()
	c.afterEnqueue(ok, false)
	return start
}

// sendHello queues the first frame, then what arrived meanwhile, with no
// other frame in between.
func (c *Conn) sendHello(hello []byte) {
	c.mu.Lock()
	held := c.heldAll
	c.heldAll, c.holdAll = heldConv{}, false
	ok, start := c.enqueueLocked(hello, "hello")
	for i, f := range held.frames {
		if !ok {
			break
		}
		var s bool
		ok, s = c.enqueueLocked(f, held.types[i])
		start = start || s
	}
	c.mu.Unlock()
	c.afterEnqueue(ok, start)
}

// hold starts holding back conv's deliveries (see Conn.held).
func (c *Conn) hold(conv string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		c.held = make(map[string]*heldConv)
	}
	h := c.held[conv]
	if h == nil {
		h = &heldConv{}
		c.held[conv] = h
	}
	h.holds++
}

// release queues the conversation frame (nil: none), then, with the last
// hold gone, everything held back, in order.
func (c *Conn) release(conv string, frame []byte) { c.releaseWith(conv, frame, "conversation") }

// releaseWith is release with a frame of type typ (a send's ack). Held
// frames are queued under c.mu, in the same critical section that ends the
// hold: a delivery racing in from the Feed would otherwise overtake them.
func (c *Conn) releaseWith(conv string, frame []byte, typ string) {
	c.mu.Lock()
	ok, start := true, false
	if frame != nil {
		ok, start = c.queueLocked(frame, typ)
	}
	if h := c.held[conv]; h != nil {
		if h.holds--; h.holds == 0 {
			delete(c.held, conv)
			if len(c.held) == 0 {
				c.held = nil
			}
			for i := 0; ok && i < len(h.frames); i++ {
				var s bool
				ok, s = c.queueLocked(h.frames[i], h.types[i])
				start = start || s
			}
		}
	}
	c.mu.Unlock()
	c.afterEnqueue(ok, start)
}

// send queues a complete frame. A client whose queue is full is too slow:
// it is closed (1013) rather than slowing the sender or anyone else.
func (c *Conn) send(frame []byte, typ string) bool {
	c.mu.Lock()
	ok, start := c.queueLocked(frame, typ)
	c.mu.Unlock()
	return c.afterEnqueue(ok, start)
}

// queueLocked queues a frame under c.mu, or keeps it for after the hello
// while that is being built.
func (c *Conn) queueLocked(frame []byte, typ string) (ok, start bool) {
	if c.holdAll {
		c.heldAll.frames = append(c.heldAll.frames, frame)
		c.heldAll.types = append(c.heldAll.types, typ)
		return true, false
	}
	return c.enqueueLocked(frame, typ)
}

// enqueueLocked queues a frame under c.mu; it reports whether it was
// queued and whether a flush must be scheduled.
func (c *Conn) enqueueLocked(frame []byte, typ string) (ok, start bool) {
	if c.closing {
		return false, false
	}
	if len(c.queue) >= c.s.cfg.WriteQueue || c.queuedBytes+len(frame) > c.s.cfg.WriteQueueBytes {
		c.slow = true
		return false, false
	}
	c.queue = append(c.queue, frame)
	c.queuedBytes += len(frame)
	c.s.m.frameOut(typ)
	start = !c.flushing
	c.flushing = true
	return true, start
}

// afterEnqueue does, outside c.mu, what enqueueLocked decided.
func (c *Conn) afterEnqueue(ok, start bool) bool {
	if start {
		c.s.scheduleWrite(c.flushFn)
	}
	if !ok && c.takeSlow() {
		c.s.m.slowConsumers.Inc()
		c.closeWith(statusTryAgainLater, reasonSlowConsumer, "too slow to read")
	}
	return ok
}

func (c *Conn) takeSlow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	slow := c.slow
	c.slow = false
	return slow
}

func (c *Conn) sendControl(op ws.OpCode, payload []byte) {
	f := make([]byte, 0, 2+len(payload))
	f = append(f, 0x80|byte(op), byte(len(payload)))
	f = append(f, payload...)
	c.send(f, "control")
}

// flush writes everything queued in as few system calls as possible (one
// writev per round), until the queue is empty. It never waits for a slow
// client: when the socket is full it keeps the unwritten bytes in c.out and
// hands the wait for writability to a parked goroutine (awaitWrite), which
// costs a little memory while that client is behind and no worker.
func (c *Conn) flush() {
	for {
		if len(c.out) == 0 {
			c.mu.Lock()
			q := c.queue
			c.queue, c.queuedBytes = nil, 0
			if c.readPaused && !c.closing && c.resumeFn != nil {
				// The queue has room again: reading carries on.
				c.readPaused = false
				c.s.scheduleRead(c.resumeFn)
			}
			closeFrame := c.closeFrame
			if len(q) == 0 {
				if c.closing {
					c.closeFrame = nil
					reason := c.closeReason
					c.mu.Unlock()
					if closeFrame != nil {
						// Best effort: a client that cannot take a close
						// frame now is closed without it.
						_, _ = writevNonblock(c.raw, [][]byte{closeFrame})
					}
					c.teardown(reason)
					return
				}
				c.flushing = false
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			c.out = q
		}
		n, err := writevNonblock(c.raw, c.out)
		c.s.m.bytesOut.Add(float64(n))
		c.out = consumeBuffers(c.out, n)
		if errors.Is(err, errWouldBlock) || err == nil && len(c.out) > 0 {
			go c.awaitWrite()
			return
		}
		if err != nil {
			c.writeFailed(err)
			return
		}
	}
}

// awaitWrite waits, parked in the runtime's poller, until the socket takes
// bytes again, then lets the writer pool carry on with the flush; a client
// that takes nothing for WriteTimeout is a slow consumer.
func (c *Conn) awaitWrite() {
	// Only a waiting write needs a deadline; setting it here, not per
	// flush, keeps a timer update off every write.
	_ = c.raw.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	n, err := writevWait(c.raw, c.out)
	c.s.m.bytesOut.Add(float64(n))
	c.out = consumeBuffers(c.out, n)
	if err != nil {
		c.writeFailed(err)
		return
	}
	c.s.scheduleWrite(c.flushFn)
}

// writeFailed ends a connection whose write failed or timed out.
func (c *Conn) writeFailed(err error) {
	c.out = nil
	c.mu.Lock()
	c.closing, c.flushing, c.queue = true, false, nil
	reason := c.closeReason // set when closeWith closed the socket under us
	c.mu.Unlock()
	var ne net.Error
	switch {
	case reason != "":
	case errors.As(err, &ne) && ne.Timeout():
		c.s.m.slowConsumers.Inc()
		reason = reasonSlowConsumer
	default:
		reason = reasonReadError
	}
	c.teardown(reason)
}

// consumeBuffers drops the first n bytes of b.
func consumeBuffers(b [][]byte, n int) [][]byte {
	for len(b) > 0 && n >= len(b[0]) {
		n -= len(b[0])
		b[0] = nil
		b = b[1:]
	}
	if len(b) > 0 && n > 0 {
		b[0] = b[0][n:]
	}
	if len(b) == 0 {
		return nil
	}
	return b
}

// closeWith sends a close frame after what is queued (dropping the queue
// of a slow consumer), then closes the socket.
func (c *Conn) closeWith(code ws.StatusCode, reason, text string) {
	frame := ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, text)))
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.closeReason = reason
	c.closeFrame = frame
	busy := c.flushing
	if reason == reasonSlowConsumer {
		c.queue, c.queuedBytes = nil, 0
		if busy {
			// A write to this client is stuck; the close frame could not
			// get out behind it. Closing the socket fails that write now
			// rather than at its deadline, and the writer tears down. Not
			// teardown here: this may run inside a fan-out, under the
			// hub's room lock that teardown needs.
			c.mu.Unlock()
			_ = c.raw.Close()
			return
		}
	}
	c.flushing = true
	c.mu.Unlock()
	if !busy {
		c.s.scheduleWrite(c.flushFn)
	}
}

// teardown releases everything the connection holds. Runs once.
func (c *Conn) teardown(reason string) {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	c.mu.Lock()
	c.closing = true
	c.queue = nil
	convs := c.convs
	c.convs = nil
	c.mu.Unlock()
	c.mu.Lock()
	desc := c.desc
	c.mu.Unlock()
	if desc != nil {
		_ = c.s.poller.Remove(desc)
	}
	_ = c.raw.Close()
	c.releaseHeld()
	c.s.hub.remove(c, convs)
	c.s.m.disconnects.WithLabelValues(reason).Inc()
	c.s.m.connections.Dec()
}
