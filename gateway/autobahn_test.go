package gateway

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatcluster/chat/gateway/netpoll"
	"github.com/chatcluster/chat/gateway/workers"
	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// The conformance suite replays Autobahn|Testsuite's cases 1-7 and 9
// (autobahn_cases_test.go; sizes bounded so that it runs in CI) and
// classifies each result as the testsuite does (its case.py):
//
//   - behaviour: the frames received match an expected list: OK; a list
//     the testsuite tolerates (fails late, not fast): NON-STRICT; none:
//     FAILED.
//   - close: the wrong side started the closing handshake: FAILED; a
//     clean close was required and not had: UNCLEAN; the server's close
//     code is not one expected: WRONG CODE (FAILED); the client had to
//     drop TCP itself: FAILED BY CLIENT (FAILED).
//
// It runs against the gateway's own connection layer with an echo in place
// of the chat protocol (TestAutobahnEcho), and every case but the
// throughput ones against the real /ws endpoint of a gateway over embedded
// NATS and a bolt store (TestAutobahnEndpoint), where an echoed message is
// any text answer (the server answers chat frames, not echoes). Anything
// but OK fails the test.

// abEvent is something the client received, or a checkpoint it passed with
// the connection still open ("timeout", as the testsuite names it).
type abEvent struct {
	kind    string // "message", "pong", "timeout"
	op      ws.OpCode
	payload []byte
}

func msgEv(p string) abEvent  { return abEvent{kind: "message", op: ws.OpText, payload: []byte(p)} }
func pongEv(p string) abEvent { return abEvent{kind: "pong", op: ws.OpPong, payload: []byte(p)} }
func timeoutEv(l string) abEvent {
	return abEvent{kind: "timeout", payload: []byte(l)}
}

// abStep is one thing the client does: write bytes (in chops of chop bytes
// when chop > 0), or pass a checkpoint (wait up to wait for the server to
// fail the connection; if it did not, record timeout(label) and go on).
type abStep struct {
	data  []byte
	chop  int
	close bool // data is a close frame
	check string
	wait  time.Duration
}

type abClose struct {
	byMe  bool            // the client starts the closing handshake
	codes []ws.StatusCode // the server's close code must be one of these (or absent)
	clean bool            // the closing handshake must complete
}

type abCase struct {
	id        string
	steps     []abStep
	ok        [][]abEvent // any of these is OK
	nonStrict [][]abEvent
	close     abClose
	// protocol, when set, says why the expectation departs from the
	// testsuite's (PROTOCOL.md chooses otherwise: binary frames, sizes).
	protocol string
	// echoOnly cases measure throughput; the endpoint rate-limits them.
	echoOnly bool
}

const (
	resultOK        = "OK"
	resultNonStrict = "NON-STRICT"
	resultFailed    = "FAILED"
	resultUnclean   = "UNCLEAN"
)

// abResult is one case's outcome.
type abResult struct {
	id, behavior, close, result, detail string
}

// abClient is the testsuite's side of one connection.
type abClient struct {
	conn net.Conn
	br   *bufio.Reader
	// anyText: an expected message matches any text message (the real
	// endpoint answers chat frames).
	anyText bool

	wmu sync.Mutex // writes: the script's and the reader's close reply

	mu          sync.Mutex
	events      []abEvent
	sentClose   bool
	closedByMe  bool
	gotClose    bool
	remoteCode  ws.StatusCode // 0: none given
	wasClean    bool
	droppedByMe bool
	closeCh     chan struct{} // closed when the server's close frame arrives
	doneCh      chan struct{} // closed when the reader ends (TCP closed)
	changed     chan struct{} // signalled on every event
}

func newABClient(conn net.Conn, br *bufio.Reader, anyText bool) *abClient {
	return &abClient{conn: conn, br: br, anyText: anyText,
		closeCh: make(chan struct{}), doneCh: make(chan struct{}), changed: make(chan struct{}, 1)}
}

// abMask is the client's masking key: fixed, so failures reproduce.
var abMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// frame builds a masked client frame.
func frame(op ws.OpCode, fin bool, payload []byte) []byte { return frameRsv(op, fin, 0, payload) }

func frameRsv(op ws.OpCode, fin bool, rsv byte, payload []byte) []byte {
	h := ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Length: int64(len(payload)), Masked: true, Mask: abMask}
	var b bytes.Buffer
	_ = ws.WriteHeader(&b, h)
	p := append([]byte(nil), payload...)
	ws.Cipher(p, h.Mask, 0)
	b.Write(p)
	return b.Bytes()
}

func closeFrameBytes(code ws.StatusCode, reason []byte) []byte {
	var p []byte
	if code != 0 {
		p = binary.BigEndian.AppendUint16(nil, uint16(code))
		p = append(p, reason...)
	}
	return frame(ws.OpClose, true, p)
}

func (c *abClient) write(data []byte, chop int) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if chop <= 0 {
		chop = len(data)
	}
	for len(data) > 0 {
		n := min(chop, len(data))
		if _, err := c.conn.Write(data[:n]); err != nil {
			return // the server closed; what it sent says how the case went
		}
		data = data[n:]
	}
}

func (c *abClient) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// read runs until the server drops TCP (or the client does, at the case's
// deadline): it records messages and pongs, and answers a close.
func (c *abClient) read() {
	defer close(c.doneCh)
	var frag []byte
	var fragOp ws.OpCode
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		c.mu.Lock()
		switch h.OpCode {
		case ws.OpText, ws.OpBinary, ws.OpContinuation:
			if h.OpCode != ws.OpContinuation {
				frag, fragOp = nil, h.OpCode
			}
			frag = append(frag, p...)
			if h.Fin {
				c.events = append(c.events, abEvent{kind: "message", op: fragOp, payload: frag})
				frag = nil
			}
		case ws.OpPong:
			c.events = append(c.events, abEvent{kind: "pong", op: ws.OpPong, payload: p})
		case ws.OpClose:
			if !c.gotClose {
				c.gotClose = true
				if len(p) >= 2 {
					c.remoteCode = ws.StatusCode(binary.BigEndian.Uint16(p))
				}
				reply := !c.sentClose
				c.sentClose = true
				c.wasClean = true
				close(c.closeCh)
				c.mu.Unlock()
				if reply {
					code := c.remoteCode
					if code == 0 || !validCloseCode(code) {
						code = ws.StatusNormalClosure
					}
					c.write(closeFrameBytes(code, nil), 0)
				}
				c.notify()
				continue
			}
		}
		c.mu.Unlock()
		c.notify()
	}
}

// sendClose starts the closing handshake (once).
func (c *abClient) sendClose(code ws.StatusCode) {
	c.mu.Lock()
	if c.sentClose {
		c.mu.Unlock()
		return
	}
	c.sentClose = true
	c.closedByMe = !c.gotClose
	c.mu.Unlock()
	c.write(closeFrameBytes(code, nil), 0)
}

// matches reports whether the events received equal want.
func (c *abClient) matches(want []abEvent) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return eventsEqual(c.events, want, c.anyText)
}

func eventsEqual(got, want []abEvent, anyText bool) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.kind != w.kind || g.op != w.op {
			return false
		}
		if anyText && g.kind == "message" && g.op == ws.OpText {
			continue
		}
		if !bytes.Equal(g.payload, w.payload) {
			return false
		}
	}
	return true
}

// runABCase plays one case on a connection already upgraded and returns
// its classification.
func runABCase(c *abClient, tc abCase) abResult {
	go c.read()
	deadline := time.Now().Add(10 * time.Second)
	for _, st := range tc.steps {
		if st.check != "" {
			select {
			case <-c.closeCh:
			case <-c.doneCh:
			case <-time.After(st.wait):
				c.mu.Lock()
				c.events = append(c.events, timeoutEv(st.check))
				c.mu.Unlock()
			}
			if c.isClosing() {
				break
			}
			continue
		}
		if st.close {
			c.mu.Lock()
			if !c.sentClose {
				c.sentClose = true
				c.closedByMe = !c.gotClose
			}
			c.mu.Unlock()
		}
		c.write(st.data, st.chop)
	}
	// As the testsuite's finishWhenDone: once what was expected arrived,
	// the client closes (when that is its part); otherwise it waits for
	// the server to fail the connection, up to the deadline.
	expected := append(append([][]abEvent(nil), tc.ok...), tc.nonStrict...)
	for !c.isClosing() && time.Now().Before(deadline) {
		if tc.close.byMe && anyMatch(c, expected) {
			break
		}
		select {
		case <-c.changed:
		case <-c.closeCh:
		case <-c.doneCh:
		case <-time.After(time.Until(deadline)):
		}
	}
	if tc.close.byMe {
		code := ws.StatusNormalClosure
		if len(tc.close.codes) > 0 {
			code = tc.close.codes[0]
		}
		c.sendClose(code)
	}
	// The server must drop TCP after the closing handshake.
	select {
	case <-c.doneCh:
	case <-time.After(time.Until(deadline) + 2*time.Second):
		c.mu.Lock()
		c.droppedByMe = true
		c.mu.Unlock()
		_ = c.conn.Close()
		<-c.doneCh
	}
	_ = c.conn.Close()
	return classify(c, tc)
}

func anyMatch(c *abClient, lists [][]abEvent) bool {
	for _, l := range lists {
		if c.matches(l) {
			return true
		}
	}
	return false
}

func (c *abClient) isClosing() bool {
	select {
	case <-c.closeCh:
		return true
	case <-c.doneCh:
		return true
	default:
		return false
	}
}

// classify applies the testsuite's rules (case.py, onConnectionLost).
func classify(c *abClient, tc abCase) abResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := abResult{id: tc.id, behavior: resultFailed}
	for _, l := range tc.ok {
		if eventsEqual(c.events, l, c.anyText) {
			r.behavior = resultOK
		}
	}
	if r.behavior == resultFailed {
		for _, l := range tc.nonStrict {
			if eventsEqual(c.events, l, c.anyText) {
				r.behavior = resultNonStrict
			}
		}
	}
	codeOK := c.remoteCode == 0
	for _, code := range tc.close.codes {
		codeOK = codeOK || c.remoteCode == code
	}
	switch {
	case tc.close.byMe != c.closedByMe:
		r.close = "FAILED (closed by the wrong endpoint)"
	case tc.close.clean && !c.wasClean:
		r.close = resultUnclean
	case !codeOK:
		r.close = fmt.Sprintf("WRONG CODE (%d, want %v)", c.remoteCode, tc.close.codes)
	case c.droppedByMe:
		r.close = "FAILED BY CLIENT (the server kept TCP open)"
	default:
		r.close = resultOK
	}
	switch {
	case r.behavior == resultFailed || r.close != resultOK && r.close != resultUnclean:
		r.result = resultFailed
	case r.close == resultUnclean:
		r.result = resultUnclean
	default:
		r.result = r.behavior
	}
	if r.result != resultOK {
		r.detail = fmt.Sprintf("received %s; close code %d by me %v clean %v dropped by me %v",
			describeEvents(c.events), c.remoteCode, c.closedByMe, c.wasClean, c.droppedByMe)
	}
	return r
}

func describeEvents(evs []abEvent) string {
	var parts []string
	for _, e := range evs {
		p := e.payload
		s := fmt.Sprintf("%s(%d bytes", e.kind, len(p))
		if len(p) <= 24 {
			s += fmt.Sprintf(" %q", p)
		}
		parts = append(parts, s+")")
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// report prints the summary table and fails on anything but OK.
func report(t *testing.T, name string, results []abResult) {
	t.Helper()
	counts := map[string]int{}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s: Autobahn cases replayed\n%-10s %-11s %-11s %s\n", name, "case", "behaviour", "close", "result")
	for _, r := range results {
		counts[r.result]++
		fmt.Fprintf(&b, "%-10s %-11s %-11s %s\n", r.id, r.behavior, firstWord(r.close), r.result)
	}
	fmt.Fprintf(&b, "total %d: OK %d, NON-STRICT %d, FAILED %d, UNCLEAN %d\n", len(results),
		counts[resultOK], counts[resultNonStrict], counts[resultFailed], counts[resultUnclean])
	t.Log(b.String())
	for _, r := range results {
		if r.result != resultOK {
			t.Errorf("case %s: %s (behaviour %s, close %s): %s", r.id, r.result, r.behavior, r.close, r.detail)
		}
	}
}

func firstWord(s string) string {
	if i := strings.IndexByte(s, ' '); i > 0 {
		return s[:i]
	}
	return s
}

// echoServer is the gateway's connection layer (poller, workers, Conn's
// frame reader and writer) with an echo in place of the chat protocol:
// what the gobwas/ws example echo server is to the testsuite.
type echoServer struct {
	s    *Server
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	conn []*Conn
}

func newEchoServer(t *testing.T, mod func(*Config)) *echoServer {
	t.Helper()
	cfg := Config{}
	if mod != nil {
		mod(&cfg)
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, m: newMetrics(prometheus.NewRegistry()), log: zap.NewNop()}
	s.hub = newHub(s) // teardown unregisters; echo connections were never added
	var err error
	if s.poller, err = netpoll.New(netpoll.Config{}); err != nil {
		t.Fatal(err)
	}
	s.pool = workers.New(workers.Config{Size: 8, Queue: 1024})
	s.writers = workers.New(workers.Config{Size: 8, Queue: 1024})
	s.onMessage = func(c *Conn, msg []byte, _ time.Time) { c.send(textFrame(msg), "echo") }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{s: s, ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			if _, err := ws.Upgrade(raw); err != nil {
				_ = raw.Close()
				continue
			}
			c := &Conn{s: s, raw: raw, id: s.nextID.Add(1)}
			c.flushFn = c.flush
			e.mu.Lock()
			e.conn = append(e.conn, c)
			e.mu.Unlock()
			s.watch(c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		e.wg.Wait()
		e.mu.Lock()
		for _, c := range e.conn {
			c.teardown(reasonShutdown)
		}
		e.mu.Unlock()
		s.pool.Close()
		s.writers.Close()
		_ = s.poller.Close()
	})
	return e
}

// dial upgrades a new connection to the echo server.
func (e *echoServer) dial(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := readResponse(br)
	if err != nil || resp != 101 {
		t.Fatalf("upgrade: %d %v", resp, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	return conn, br
}

// readResponse reads an HTTP response head and returns its status.
func readResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, err
	}
	var code int
	if _, err := fmt.Sscanf(line, "HTTP/1.1 %d", &code); err != nil {
		return 0, fmt.Errorf("status line %q: %w", line, err)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if l == "\r\n" {
			return code, nil
		}
	}
}

// TestAutobahnEcho replays every case against the connection layer.
func TestAutobahnEcho(t *testing.T) {
	e := newEchoServer(t, nil)
	var results []abResult
	for _, tc := range autobahnCases() {
		conn, br := e.dial(t)
		results = append(results, runABCase(newABClient(conn, br, false), tc))
	}
	report(t, "echo harness", results)
}

// TestAutobahnEndpoint replays the cases against the real /ws endpoint,
// where every frame goes through the chat protocol's handling.
func TestAutobahnEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	token, _ := e.signup(t, "autobahn")
	var results []abResult
	for _, tc := range autobahnCases() {
		if tc.echoOnly {
			continue
		}
		rc := dialRaw(t, e.addr, token)
		if typ := typeOf(rc.read(t)); typ != "hello" {
			t.Fatalf("first frame %q, want hello", typ)
		}
		_ = rc.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		results = append(results, runABCase(newABClient(rc.conn, rc.br, true), tc))
	}
	report(t, "real /ws endpoint", results)
}
