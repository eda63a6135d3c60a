package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/router"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/bolt"
	"github.com/gobwas/ws"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nats-server keeps process-wide helpers alive after Shutdown.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"),
	)
}

// env is a gateway with real NATS (JetStream) and a real store behind it.
type env struct {
	gw   *Process
	addr string
	nc   *nats.Conn
}

type tb interface {
	testing.TB
}

func newEnv(t tb, mod func(*Config)) *env {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := router.EnsureStream(ctx, js, router.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	backend, err := bolt.Open(t.TempDir()+"/store.db", bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := store.NewService(store.ServiceConfig{Stream: chat.StreamName, Durable: chat.StoreDurable}, backend, nc, js, 1, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	svcDone := make(chan struct{})
	go func() {
		defer close(svcDone)
		_ = svc.Run(context.Background())
	}()
	// The tests sign up and log in from loopback far more often than the
	// throttles allow, open thousands of connections of one user and send
	// from several at full speed: the per-user limits are lifted here, and
	// throttle_test.go and userlimits_test.go set their own.
	cfg := Config{JWTSecret: []byte("test-secret-0123456789abcdef"),
		Throttle:           ThrottleConfig{Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		MaxUserConnections: 1 << 30, UserSendRate: 1e9, UserSendBurst: 1 << 30}
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	gw, err := Start(ctx, Options{Config: cfg, NATS: nc, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		_ = gw.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = gw.Shutdown(context.Background())
		_ = gw.Shutdown(context.Background()) // twice is safe
		<-serveDone
		_ = svc.Shutdown(context.Background())
		<-svcDone
		_ = backend.Close()
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	harnessRegistries.Store(gw, reg)
	t.Cleanup(func() { harnessRegistries.Delete(gw) })
	return &env{gw: gw, addr: ln.Addr().String(), nc: nc}
}

// signup makes a user and returns its token and ID.
func (e *env) signup(t tb, name string) (string, string) {
	t.Helper()
	body := fmt.Sprintf(`{"username":%q,"password":"password-123"}`, name)
	resp, err := http.Post("http://"+e.addr+"/api/v1/signup", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		User  chat.User `json:"user"`
		Token string    `json:"token"`
	}
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("signup %s: %d %s", name, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Token, out.User.ID.String()
}

// rawClient is a WebSocket client with no goroutine of its own: a socket
// and a buffered reader, so that tests can hold thousands and count the
// server's goroutines alone.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t tb, addr, token string) *rawClient {
	t.Helper()
	return dialRawWith(t, net.Dialer{}, addr, token)
}

func dialRawWith(t tb, d net.Dialer, addr, token string) *rawClient {
	t.Helper()
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	fmt.Fprintf(conn, "GET /ws?token=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", token, addr, key)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	return &rawClient{conn: conn, br: br}
}

// read returns the next text frame's payload.
func (c *rawClient) read(t tb) []byte {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			t.Fatal(err)
		}
		if h.OpCode == ws.OpText {
			return p
		}
	}
}

// write sends a masked text frame.
func (c *rawClient) write(t tb, payload string) {
	t.Helper()
	f := ws.NewTextFrame([]byte(payload))
	f = ws.MaskFrameInPlace(f)
	var buf bytes.Buffer
	if err := ws.WriteFrame(&buf, f); err != nil {
		t.Fatal(err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}

func typeOf(b []byte) string {
	var f struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(b, &f)
	return f.Type
}

// eventually polls fn until it returns nil or the time is up.
func eventually(t tb, total time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
