//go:build linux && !netpollfallback

package netpoll

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Desc is one watched connection. It is dead after Remove.
type Desc struct {
	// id is what the kernel hands back with each event. Ids are never
	// reused, so an event queued for a removed conn whose fd number now
	// belongs to a new conn resolves to nothing instead of the new conn.
	id    uint64
	rc    syscall.RawConn
	cb    func(*Desc, Event)
	state atomic.Uint32
}

// modOp carries one Resume's epoll_ctl through RawConn.Control. Ops are
// pooled, each with its method value built once, so Resume allocates
// nothing. The result cannot live in the Desc: the moment the MOD lands,
// the next event may fire and another worker's Resume run on the same Desc.
type modOp struct {
	p   *epoll
	id  uint64
	err error
	fn  func(fd uintptr)
}

func (o *modOp) run(fd uintptr) { o.err = o.p.ctl(unix.EPOLL_CTL_MOD, int(fd), o.id) }

// Desc states. Armed -> fired happens on the poller goroutine right before
// cb; fired -> armed in Resume; anything -> removed in Remove. The CAS on
// armed -> fired is what keeps cb from starting after Remove.
const (
	stateArmed uint32 = iota
	stateFired
	stateRemoved
)

// wakeID marks the eventfd that Close writes to; Desc ids start at 1.
const wakeID = 0

const watchEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

type epoll struct {
	cfg  Config
	epfd int
	evfd int
	// file wraps epfd so that the loop parks in the Go runtime's poller
	// (an epoll fd is itself pollable) rather than holding an OS thread in
	// a blocking epoll_wait: a wake-up then costs a goroutine switch, not
	// a thread hand-off.
	file *os.File

	// mu guards closed. Every epoll_ctl holds it for reading, so Close
	// (which takes it for writing) never closes epfd under a ctl call: a
	// closed epfd's number could be reused by an unrelated file.
	mu     sync.RWMutex
	closed bool

	tabMu  sync.Mutex
	descs  map[uint64]*Desc
	nextID uint64

	mods sync.Pool // of *modOp

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var _ Poller = (*epoll)(nil)

func newPoller(cfg Config) (Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setID(&ev, wakeID)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		_ = unix.Close(evfd)
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: epoll_ctl add eventfd: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(evfd)
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: set epoll fd non-blocking: %w", err)
	}
	p := &epoll{
		cfg:   cfg,
		epfd:  epfd,
		evfd:  evfd,
		file:  os.NewFile(uintptr(epfd), "netpoll-epoll"),
		descs: make(map[uint64]*Desc),
		done:  make(chan struct{}),
	}
	p.mods.New = func() any {
		o := &modOp{p: p}
		o.fn = o.run
		return o
	}
	go p.loop()
	return p, nil
}

// The epoll data field is 64 bits everywhere; x/sys splits it into Fd and
// Pad (after an alignment word on some architectures).
func setID(ev *unix.EpollEvent, id uint64) {
	ev.Fd = int32(uint32(id))
	ev.Pad = int32(uint32(id >> 32))
}

func getID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

func toEvent(e uint32) Event {
	var ev Event
	if e&(unix.EPOLLIN|unix.EPOLLPRI) != 0 {
		ev |= EventRead
	}
	if e&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		ev |= EventHup
	}
	return ev
}

type ready struct {
	d  *Desc
	ev Event
}

func (p *epoll) loop() {
	defer close(p.done)
	rc, err := p.file.SyscallConn()
	if err != nil {
		p.cfg.OnError(fmt.Errorf("netpoll: %w", err))
		return
	}
	events := make([]unix.EpollEvent, p.cfg.Batch)
	batch := make([]ready, 0, p.cfg.Batch)
	var (
		n       int
		waitErr error
	)
	// poll never blocks: when nothing is ready it returns false and the
	// runtime parks the goroutine until epfd is readable. It polls after
	// the runtime has reset its readiness flag, so no wake-up is lost.
	poll := func(fd uintptr) bool {
		n, waitErr = unix.EpollWait(int(fd), events, 0)
		if errors.Is(waitErr, unix.EINTR) {
			n, waitErr = 0, nil
		}
		return n > 0 || waitErr != nil
	}
	for {
		if err := rc.Read(poll); err != nil {
			p.cfg.OnError(fmt.Errorf("netpoll: wait: %w", err))
			return
		}
		if waitErr != nil {
			p.cfg.OnError(fmt.Errorf("netpoll: epoll_wait: %w", waitErr))
			return
		}
		if batch = p.dispatch(events[:n], batch); batch == nil {
			return
		}
	}
}

// dispatch runs the callbacks for one epoll_wait's events. It returns the
// emptied batch for reuse, or nil when Close's wake-up was among them.
func (p *epoll) dispatch(events []unix.EpollEvent, batch []ready) []ready {
	stop := false
	p.tabMu.Lock()
	for i := range events {
		id := getID(&events[i])
		if id == wakeID {
			stop = true
			continue
		}
		// A removed conn's id is gone from the table, even if its fd
		// number is already watched again for a new conn.
		if d := p.descs[id]; d != nil {
			batch = append(batch, ready{d: d, ev: toEvent(events[i].Events)})
		}
	}
	p.tabMu.Unlock()
	if stop {
		return nil
	}
	// Callbacks run without any lock held: they may call Remove.
	for i := range batch {
		if batch[i].d.state.CompareAndSwap(stateArmed, stateFired) {
			batch[i].d.cb(batch[i].d, batch[i].ev)
		}
		batch[i] = ready{}
	}
	return batch[:0]
}

// control runs op with the conn's fd while the poller is open. Go holds a
// reference on the fd during Control, so the number cannot be closed and
// reused by another conn while op runs; on a closed conn op is not run.
func (p *epoll) control(rc syscall.RawConn, op func(fd uintptr)) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	return rc.Control(op)
}

func (p *epoll) ctl(op, fd int, id uint64) error {
	ev := unix.EpollEvent{Events: watchEvents}
	setID(&ev, id)
	return unix.EpollCtl(p.epfd, op, fd, &ev)
}

// Add implements Poller.
func (p *epoll) Add(conn net.Conn, cb func(Event)) (*Desc, error) {
	if cb == nil {
		return nil, errors.New("netpoll: nil callback")
	}
	return p.Watch(conn, func(_ *Desc, ev Event) { cb(ev) })
}

// Watch implements Poller.
func (p *epoll) Watch(conn net.Conn, cb func(*Desc, Event)) (*Desc, error) {
	if cb == nil {
		return nil, errors.New("netpoll: nil callback")
	}
	rc, err := rawConn(conn)
	if err != nil {
		return nil, err
	}
	d := &Desc{rc: rc, cb: cb}

	// Into the table before the kernel knows: it may report at once.
	p.tabMu.Lock()
	p.nextID++
	d.id = p.nextID
	p.descs[d.id] = d
	p.tabMu.Unlock()

	var ctlErr error
	err = p.control(rc, func(fd uintptr) { ctlErr = p.ctl(unix.EPOLL_CTL_ADD, int(fd), d.id) })
	if err == nil && ctlErr != nil {
		err = fmt.Errorf("netpoll: epoll_ctl add: %w", ctlErr)
	}
	if err != nil {
		d.state.Store(stateRemoved)
		p.tabMu.Lock()
		delete(p.descs, d.id)
		p.tabMu.Unlock()
		if errors.Is(err, ErrClosed) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("netpoll: add: %w", err)
	}
	return d, nil
}

// Resume implements Poller.
func (p *epoll) Resume(d *Desc) error {
	if !d.state.CompareAndSwap(stateFired, stateArmed) {
		if d.state.Load() == stateRemoved {
			return ErrRemoved
		}
		return nil // already armed
	}
	o := p.mods.Get().(*modOp)
	o.id = d.id
	err := p.control(d.rc, o.fn)
	ctlErr := o.err
	o.err = nil
	p.mods.Put(o)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("netpoll: resume: %w", err)
	}
	if ctlErr != nil {
		if errors.Is(ctlErr, unix.ENOENT) {
			return ErrRemoved // a concurrent Remove deleted it first
		}
		return fmt.Errorf("netpoll: epoll_ctl mod: %w", ctlErr)
	}
	return nil
}

// Remove implements Poller.
func (p *epoll) Remove(d *Desc) error {
	if d == nil || d.state.Swap(stateRemoved) == stateRemoved {
		return nil
	}
	p.tabMu.Lock()
	delete(p.descs, d.id)
	p.tabMu.Unlock()

	var ctlErr error
	err := p.control(d.rc, func(fd uintptr) {
		ctlErr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
	if err != nil {
		// Poller closed, or conn already closed: the kernel drops a
		// socket's registrations when the socket goes away, and the
		// table entry is gone, so nothing is left to undo.
		return nil
	}
	if ctlErr != nil && !errors.Is(ctlErr, unix.ENOENT) {
		return fmt.Errorf("netpoll: epoll_ctl del: %w", ctlErr)
	}
	return nil
}

// Close implements Poller.
func (p *epoll) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()

		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		if _, err := unix.Write(p.evfd, one[:]); err != nil {
			p.closeErr = fmt.Errorf("netpoll: wake poller: %w", err)
		}
		<-p.done

		p.tabMu.Lock()
		clear(p.descs)
		p.tabMu.Unlock()
		if err := p.file.Close(); err != nil && p.closeErr == nil {
			p.closeErr = fmt.Errorf("netpoll: close epoll: %w", err)
		}
		if err := unix.Close(p.evfd); err != nil && p.closeErr == nil {
			p.closeErr = fmt.Errorf("netpoll: close eventfd: %w", err)
		}
	})
	return p.closeErr
}
