package chatclient

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// poll calls cond until it returns nil or the deadline passes.
func poll(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	end := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		<-tick.C
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startChatDev builds ./cmd/chat and runs `chat dev` on a free port with a
// fresh data folder; it returns the server's URL and stops it at cleanup.
func startChatDev(t *testing.T, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "chat")
	build := exec.Command("go", "build", "-o", bin, "./cmd/chat")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/chat: %v\n%s", err, out)
	}
	var out syncBuffer
	cmd := exec.Command(bin, append([]string{"dev", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--drain", "1s"}, args...)...)
	cmd.Dir = dir
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	urlRe := regexp.MustCompile(`chat dev: open (http://\S+?)/?\s`)
	var base string
	poll(t, "chat dev's URL", 60*time.Second, func() error {
		m := urlRe.FindStringSubmatch(out.String())
		if m == nil {
			return fmt.Errorf("output so far: %s", out.String())
		}
		base = m[1]
		return nil
	})
	poll(t, "/readyz 200", 30*time.Second, func() error {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	})
	return base
}

// proxy passes TCP connections to the server; frozen stops passing the
// server's bytes back (requests still arrive, answers do not), holdUp stops
// passing the client's bytes on (requests are lost), cut closes every
// connection through it and ends both.
type proxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	holdUp atomic.Bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	dials  atomic.Int64
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.dials.Add(1)
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.conns[u] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(u, c, false)
		go p.pipe(c, u, true)
	}
}

// pipe copies src to dst, dropping what frozen or holdUp say.
func (p *proxy) pipe(dst, src net.Conn, fromServer bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		drop := p.holdUp.Load()
		if fromServer {
			drop = p.frozen.Load()
		}
		if n > 0 && !drop {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
}

func (p *proxy) cut() {
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
	p.frozen.Store(false)
	p.holdUp.Store(false)
}

func (p *proxy) close() {
	_ = p.ln.Close()
	p.cut()
	p.wg.Wait()
}

var _ io.Writer = (*syncBuffer)(nil)

func signup(t *testing.T, ctx context.Context, base, name string) Auth {
	t.Helper()
	username := fmt.Sprintf("%s_%d", name, time.Now().UnixNano()%1e9)
	a, err := Signup(ctx, nil, base, username, "correct horse battery", "")
	if err != nil {
		t.Fatalf("signup %s: %v", username, err)
	}
	return a
}

func hostOf(base string) string {
	return base[len("http://"):]
}
