// Package netpoll tells the gateway when an idle connection becomes readable,
// so that an idle connection holds no goroutine and no buffer.
//
// On Linux a single goroutine waits in epoll_wait for every watched
// connection. Elsewhere (a developer's Mac, Windows) a portable fallback
// parks one goroutine per watched connection in the Go runtime's own poller;
// it behaves the same but does not save goroutines. Build with the tag
// netpollfallback to use the fallback on Linux too (its tests run that way).
//
// The intended use, as in gobwas/ws's chat example:
//
//	_, err := poller.Watch(conn, func(d *netpoll.Desc, ev netpoll.Event) {
//		// Runs on the poller's goroutine: no I/O, no blocking.
//		if pool.Schedule(func() { handle(conn, d, ev) }) != nil {
//			// pool full: nobody will read conn again unless you act
//		}
//	})
//
// where handle reads what it can (with a read deadline), then calls
// poller.Resume(d) to hear about the next data, or poller.Remove(d) and
// conn.Close() when the connection is done (always on EventHup).
package netpoll

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
)

// Event says why a callback fired. It is a bit set.
type Event uint8

const (
	// EventRead means the connection has data to read (or an EOF to see).
	EventRead Event = 1 << iota
	// EventHup means the peer closed (at least its write side), the
	// connection was reset, or the socket reported an error. Data sent
	// before the close may still be waiting to be read.
	EventHup
)

// String returns the set bits by name, for logs.
func (e Event) String() string {
	if e == 0 {
		return "none"
	}
	var parts []string
	if e&EventRead != 0 {
		parts = append(parts, "read")
	}
	if e&EventHup != 0 {
		parts = append(parts, "hup")
	}
	if rest := e &^ (EventRead | EventHup); rest != 0 {
		parts = append(parts, "unknown")
	}
	return strings.Join(parts, "|")
}

// Poller watches connections for readability.
type Poller interface {
	// Add starts watching conn, which must implement syscall.Conn
	// (*net.TCPConn, *net.UnixConn); other conns (such as *tls.Conn) get
	// ErrUnsupported. cb runs on the poller's goroutine when conn is
	// readable or hung up; it must not block or do I/O (hand the work to a
	// pool). Watches are one-shot: after cb fires, it does not fire again
	// for this conn until Resume is called, so only one worker ever reads a
	// connection at a time. If data is already waiting, cb fires at once.
	Add(conn net.Conn, cb func(Event)) (*Desc, error)
	// Watch is Add with the Desc passed to cb. Prefer it whenever cb (or
	// the work it schedules) needs the Desc to Resume or Remove: with
	// data already waiting, cb can run before Add has returned the Desc
	// to its caller, so a Desc stored from Add's result may not be there
	// yet (a data race); the argument always is.
	Watch(conn net.Conn, cb func(*Desc, Event)) (*Desc, error)
	// Resume re-arms d after the worker has read what it could. If data
	// arrived meanwhile, cb fires again at once. Resume on a Desc that is
	// already armed does nothing; on a removed one it returns ErrRemoved.
	// Call it from the one goroutine that owns d (the worker cb woke).
	Resume(d *Desc) error
	// Remove stops watching d. Call it before closing the conn. After
	// Remove returns, cb is not started again for d, except for the one
	// call a concurrent event may already have begun when Remove was called
	// from outside the worker that owns d. Safe to call twice, from inside
	// cb, and after Close.
	Remove(d *Desc) error
	// Close stops the poller and waits for its goroutines. Callbacks do not
	// fire after Close returns; the watched conns are left open (close
	// them yourself). Add and Resume then return ErrClosed. Safe to call
	// twice.
	Close() error
}

// Config configures a Poller. The zero value is ready to use.
type Config struct {
	// OnError receives errors the poller cannot return to a caller, such as
	// a failed epoll_wait (after which the poller stops delivering events).
	// Default: nil, such errors are dropped. Give it a logger.
	OnError func(error)
	// Batch is how many events one epoll_wait call may return (Linux).
	// Default: DefaultBatch.
	Batch int
}

// DefaultBatch is the default Config.Batch.
const DefaultBatch = 128

func (c Config) withDefaults() Config {
	if c.OnError == nil {
		c.OnError = func(error) {}
	}
	if c.Batch <= 0 {
		c.Batch = DefaultBatch
	}
	return c
}

var (
	// ErrClosed is returned by Add and Resume after Close.
	ErrClosed = errors.New("netpoll: poller closed")
	// ErrRemoved is returned by Resume on a Desc that was removed.
	ErrRemoved = errors.New("netpoll: descriptor removed")
	// ErrUnsupported is returned by Add for a conn that exposes no file
	// descriptor (for example *tls.Conn): serve it with a goroutine instead.
	ErrUnsupported = errors.New("netpoll: connection has no file descriptor")
)

// New starts a Poller: epoll on Linux, the portable fallback elsewhere.
func New(cfg Config) (Poller, error) {
	return newPoller(cfg.withDefaults())
}

// rawConn returns the conn's handle on its file descriptor.
func rawConn(conn net.Conn) (syscall.RawConn, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrUnsupported, conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("netpoll: %w", err)
	}
	return rc, nil
}
