//go:build !linux || netpollfallback

package netpoll

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Desc is one watched connection. It is dead after Remove.
type Desc struct {
	p    *fallback
	conn net.Conn
	rc   syscall.RawConn
	cb   func(*Desc, Event)

	resume chan struct{} // wakes the watcher after Resume; capacity 1
	stop   chan struct{} // closed by Remove

	// mu orders the watcher's clearing of the read deadline against
	// Remove's setting of it, so a Remove is never undone and missed.
	mu      sync.Mutex
	fired   bool
	removed bool
}

// fallback parks one goroutine per watched conn in the Go runtime's own
// poller (kqueue on macOS, IOCP on Windows) until the conn is readable,
// without consuming any data. It costs a goroutine per conn; it exists so
// the gateway builds and behaves the same on a developer's machine.
type fallback struct {
	cfg Config

	mu     sync.Mutex
	closed bool
	descs  map[*Desc]struct{}

	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ Poller = (*fallback)(nil)

func newPoller(cfg Config) (Poller, error) {
	return &fallback{cfg: cfg, descs: make(map[*Desc]struct{})}, nil
}

// Add implements Poller.
func (p *fallback) Add(conn net.Conn, cb func(Event)) (*Desc, error) {
	if cb == nil {
		return nil, errors.New("netpoll: nil callback")
	}
	return p.Watch(conn, func(_ *Desc, ev Event) { cb(ev) })
}

// Watch implements Poller.
func (p *fallback) Watch(conn net.Conn, cb func(*Desc, Event)) (*Desc, error) {
	if cb == nil {
		return nil, errors.New("netpoll: nil callback")
	}
	rc, err := rawConn(conn)
	if err != nil {
		return nil, err
	}
	// Fail on a closed conn here, as epoll_ctl does on Linux.
	if err := rc.Control(func(uintptr) {}); err != nil {
		return nil, fmt.Errorf("netpoll: add: %w", err)
	}
	d := &Desc{
		p:      p,
		conn:   conn,
		rc:     rc,
		cb:     cb,
		resume: make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	p.descs[d] = struct{}{}
	p.wg.Add(1)
	go p.watch(d)
	return d, nil
}

// watch waits for d to become readable, fires cb, and waits for Resume.
func (p *fallback) watch(d *Desc) {
	defer p.wg.Done()
	var scratch [1]byte
	for {
		d.mu.Lock()
		if d.removed {
			d.mu.Unlock()
			return
		}
		// A deadline left by the worker's last read would end the wait
		// early; an idle conn has none under epoll either.
		_ = d.conn.SetReadDeadline(time.Time{})
		d.mu.Unlock()

		ev, err := waitReadable(d.rc, scratch[:])
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				continue // Remove's kick (checked at the top) or a stray deadline
			case errors.Is(err, net.ErrClosed):
				// Closed without Remove: epoll forgets such a conn
				// silently, and so do we.
				p.forget(d)
				return
			default:
				ev = EventHup
			}
		}

		d.mu.Lock()
		if d.removed {
			d.mu.Unlock()
			return
		}
		d.fired = true
		d.mu.Unlock()
		d.cb(d, ev)

		select {
		case <-d.resume:
		case <-d.stop:
			return
		}
	}
}

// Resume implements Poller.
func (p *fallback) Resume(d *Desc) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.removed:
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return ErrClosed
		}
		return ErrRemoved
	case !d.fired:
		return nil // already armed
	}
	d.fired = false
	d.resume <- struct{}{} // cannot block: one send per firing
	return nil
}

// Remove implements Poller.
func (p *fallback) Remove(d *Desc) error {
	if d == nil {
		return nil
	}
	p.forget(d)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed {
		return nil
	}
	d.removed = true
	close(d.stop)
	// Wake a watcher parked in the runtime poller; it sees removed and
	// exits. This leaves the conn's read deadline in the past.
	_ = d.conn.SetReadDeadline(time.Unix(1, 0))
	return nil
}

func (p *fallback) forget(d *Desc) {
	p.mu.Lock()
	delete(p.descs, d)
	p.mu.Unlock()
}

// Close implements Poller.
func (p *fallback) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		descs := make([]*Desc, 0, len(p.descs))
		for d := range p.descs {
			descs = append(descs, d)
		}
		p.mu.Unlock()
		for _, d := range descs {
			_ = p.Remove(d)
		}
		p.wg.Wait()
	})
	return nil
}
