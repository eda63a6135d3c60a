package gateway

import (
	"bufio"
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkUpgrade measures a whole connection set-up over loopback: TCP
// connect, zero-copy upgrade with token check, hello, close.
func BenchmarkUpgrade(b *testing.B) {
	e := newEnv(b, nil)
	token, _ := e.signup(b, "bench")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := dialRaw(b, e.addr, token)
		c.read(b) // hello
		c.conn.Close()
	}
}

// discardConn is a socket that swallows writes, so benchmarks measure the
// gateway's own work rather than the kernel's.
type discardConn struct {
	net.Conn
	written atomic.Int64
}

func (d *discardConn) Write(p []byte) (int, error)      { d.written.Add(int64(len(p))); return len(p), nil }
func (d *discardConn) SetWriteDeadline(time.Time) error { return nil }
func (d *discardConn) SetReadDeadline(time.Time) error  { return nil }
func (d *discardConn) Close() error                     { return nil }

// benchServer is a Server with only what frame handling needs.
func benchServer() *Server {
	cfg := Config{}
	cfg.setDefaults()
	s := &Server{cfg: cfg, m: newMetrics(prometheus.NewRegistry())}
	s.writers = newTestPool()
	s.hub = newHub(s) // teardown unregisters from it; these connections were never added
	return s
}

// BenchmarkFrameDecode reads one masked client text frame from a buffer
// (header, unmasking, UTF-8 check).
func BenchmarkFrameDecode(b *testing.B) {
	payload := []byte(`{"type":"send","id":"42","conversation":"251807734886146048-251807735414628352","client_id":"c-1","body":"hello there, how are you today?"}`)
	f := ws.MaskFrameInPlace(ws.NewTextFrame(payload))
	var raw bytes.Buffer
	_ = ws.WriteFrame(&raw, f)
	frame := raw.Bytes()
	s := benchServer()
	defer s.writers.Close()
	c := &Conn{s: s, raw: &discardConn{}}
	r := bytes.NewReader(frame)
	br := bufio.NewReader(r)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Reset(frame)
		br.Reset(r)
		msg, _, err := c.readFrame(br)
		if err != nil || len(msg) != len(payload) {
			b.Fatal(err)
		}
	}
}

// BenchmarkFanout1000 delivers one message frame, encoded once, to 1,000
// local connections and waits until every write queue is flushed.
func BenchmarkFanout1000(b *testing.B) {
	s := benchServer()
	defer s.writers.Close()
	const n = 1000
	conns := make([]*Conn, n)
	sinks := make([]*discardConn, n)
	for i := range conns {
		sinks[i] = &discardConn{}
		conns[i] = &Conn{s: s, raw: sinks[i], user: chat.ID(i + 1)}
		conns[i].flushFn = conns[i].flush
	}
	m := chat.Message{ID: 1 << 40, Conversation: "9", Sender: 1, Body: "hello everyone", SentAt: time.Now(), ClientID: "x"}
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// As the hub does it: one frame for everyone.
		frame := messageFrame(m.AppendJSON(nil))
		for _, c := range conns {
			c.deliver("9", frame, "message")
		}
		wg.Add(1)
		go func() { defer wg.Done(); waitFlushed(conns) }()
		wg.Wait()
	}
	b.StopTimer()
	b.ReportMetric(float64(n), "deliveries/op")
}

func waitFlushed(conns []*Conn) {
	for _, c := range conns {
		for {
			c.mu.Lock()
			busy := c.flushing
			c.mu.Unlock()
			if !busy {
				break
			}
			time.Sleep(time.Microsecond)
		}
	}
}
