package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// cutProxy forwards TCP connections to a NATS server until cut: then it
// drops every connection and refuses new ones (a network partition between
// one client and NATS, while others still reach it), until healed.
type cutProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		p.setCut(true)
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) URL() string { return "nats://" + p.ln.Addr().String() }

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = c.Close()
			_ = up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		p.wg.Go(func() { pipe(up, c) })
		p.wg.Go(func() { pipe(c, up) })
	}
}

// setCut cuts (true) or heals (false) the link.
func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			_ = c.Close()
		}
	}
}

func connectVia(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectJitter(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// steal creates key in the lease bucket as soon as it is free (the lease
// expired) and returns when the successful write was sent.
func steal(t *testing.T, kv jetstream.KeyValue, key string, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		sent := time.Now()
		_, err := kv.Create(t.Context(), key, []byte("thief"))
		if err == nil {
			return sent
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never expired", key)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A lease whose renewals cannot reach NATS stops being trusted before its
// key can expire, so that nobody makes IDs with its number while another
// process leases it; when the link heals the lease knows it is lost.
func TestLeaseCutOffLapsesBeforeOthersCanTakeIt(t *testing.T) {
	s := runServer(t)
	_, js := connect(t, s)
	proxy := newCutProxy(t, s.Addr().String())
	ljs := connectVia(t, proxy.URL())

	const ttl = 1500 * time.Millisecond
	l, err := AcquireNodeID(t.Context(), ljs, LeaseConfig{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Release(context.Background()) })
	if err := l.Err(); err != nil {
		t.Fatalf("a fresh lease: %v", err)
	}
	// Renewals move the deadline.
	first := l.HeldUntil()
	checkFor(t, 5*time.Second, func() error {
		if !l.HeldUntil().After(first) {
			return errors.New("the lease was never renewed")
		}
		return nil
	})

	proxy.setCut(true)
	kv, err := js.KeyValue(t.Context(), chat.NodeIDBucket)
	if err != nil {
		t.Fatal(err)
	}
	key := "node." + strconv.Itoa(l.Node)
	taken := steal(t, kv, key, 10*ttl)
	// Another process makes IDs with this number from now on: the cut-off
	// holder must have stopped already.
	if until := l.HeldUntil(); until.After(taken) {
		t.Fatalf("the lease was trusted until %v after another process took it", until.Sub(taken))
	}
	if err := l.Err(); !errors.Is(err, ErrLeaseLapsed) {
		t.Fatalf("lease of a cut-off holder: %v", err)
	}

	// The link heals: the next renewal finds the key someone else's.
	proxy.setCut(false)
	checkFor(t, 10*time.Second, func() error {
		if err := l.Err(); !errors.Is(err, ErrLeaseLost) {
			return fmt.Errorf("after the link healed: %v", err)
		}
		return nil
	})
	l.Release(t.Context())
	e, err := kv.Get(t.Context(), key)
	if err != nil || string(e.Value()) != "thief" {
		t.Fatalf("the new holder's key after Release: %v %v", e, err)
	}
}

// NodeIDs refuses IDs while its holder is cut off, and leases another node
// ID once the link heals and it learns its own was taken.
func TestNodeIDsRefuseWhileCutOffThenRecover(t *testing.T) {
	s := runServer(t)
	_, js := connect(t, s)
	proxy := newCutProxy(t, s.Addr().String())
	ljs := connectVia(t, proxy.URL())

	const ttl = 1500 * time.Millisecond
	ids, err := LeaseNodeIDs(t.Context(), ljs, LeaseConfig{TTL: ttl, Check: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ids.Close(context.Background())
		ids.Close(context.Background()) // twice
	})
	node := ids.Node()
	id, err := ids.Next()
	if err != nil || id.Node() != node || !ids.Held() {
		t.Fatalf("id %v (node %d of %d) %v", id, id.Node(), node, err)
	}

	proxy.setCut(true)
	cut := time.Now()
	// Safety, exactly: no renewal gets through after the cut, so the time
	// until which IDs are made is fixed by one sent before it, and must end
	// before the key can expire (cut + TTL at the latest). Measuring when
	// the refusal is first seen would time the scheduler instead.
	if until := ids.heldUntil(); !until.Before(cut.Add(ttl)) {
		t.Fatalf("IDs would be made until %v after the cut, not before the TTL (%v) runs out", until.Sub(cut), ttl)
	}
	checkFor(t, 10*ttl, func() error {
		if _, err := ids.Next(); !errors.Is(err, chat.ErrUnavailable) || !errors.Is(err, ErrLeaseLapsed) {
			return fmt.Errorf("an ID while cut off: %v", err)
		}
		return nil
	})
	if ids.Held() {
		t.Fatal("held while cut off")
	}
	kv, err := js.KeyValue(t.Context(), chat.NodeIDBucket)
	if err != nil {
		t.Fatal(err)
	}
	steal(t, kv, "node."+strconv.Itoa(node), 10*ttl)

	proxy.setCut(false)
	checkFor(t, 10*time.Second, func() error {
		id, err = ids.Next()
		return err
	})
	if ids.Node() == node || id.Node() != ids.Node() {
		t.Fatalf("after recovery: node %d (was %d), id of node %d", ids.Node(), node, id.Node())
	}
}
