package gateway

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMaxUserConnections(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.MaxUserConnections = 3
		c.UserSendRate, c.UserSendBurst = 20, 50
	})
	token, uid := e.signup(t, "many")
	user, err := chat.ParseID(uid)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := e.signup(t, "other")
	var open []*rawClient
	for range 3 {
		c := dialRaw(t, e.addr, token)
		if typ := typeOf(c.read(t)); typ != "hello" {
			t.Fatalf("first frame %q, want hello", typ)
		}
		open = append(open, c)
	}
	// The fourth is upgraded and then closed with 4029, before hello.
	fourth := dialRaw(t, e.addr, token)
	if got := fourth.closeCode(t, 5*time.Second); got != statusTooManyConnections {
		t.Fatalf("fourth connection closed with %d, want %d", got, statusTooManyConnections)
	}
	if n := testutil.ToFloat64(e.gw.throttled.WithLabelValues(throttleUserConnections)); n != 1 {
		t.Errorf("throttled{user_connections} = %v, want 1", n)
	}
	// Another user is not affected; and the open three still work.
	if typ := typeOf(dialRaw(t, e.addr, other).read(t)); typ != "hello" {
		t.Fatalf("another user's first frame %q, want hello", typ)
	}
	for i, c := range open {
		c.write(t, fmt.Sprintf(`{"type":"ping","id":"p%d"}`, i))
		if typ := typeOf(c.read(t)); typ != "pong" {
			t.Fatalf("connection %d answered %q, want pong", i, typ)
		}
	}
	// Once one closes, a new one is let in.
	_ = open[0].conn.Close()
	eventually(t, 5*time.Second, func() error {
		if n := e.gw.hub.userConnCount(user); n != 2 {
			return fmt.Errorf("%d connections still counted", n)
		}
		return nil
	})
	if typ := typeOf(dialRaw(t, e.addr, token).read(t)); typ != "hello" {
		t.Fatalf("after a close, first frame %q, want hello", typ)
	}
}

// Ten requests on each of three connections of one user: the user's
// bucket (burst 5, refilled too slowly to matter) lets five through in
// all, each connection's own (burst 50) would have let all through.
func TestUserSendRateAcrossConnections(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.UserSendRate = 0.001
		c.UserSendBurst = 5
		c.MaxUserConnections = 20
	})
	token, _ := e.signup(t, "chatty")
	var conns []*rawClient
	for range 3 {
		c := dialRaw(t, e.addr, token)
		if typ := typeOf(c.read(t)); typ != "hello" {
			t.Fatalf("first frame %q, want hello", typ)
		}
		conns = append(conns, c)
	}
	pongs, limited := 0, 0
	for i := range 10 {
		for j, c := range conns {
			c.write(t, fmt.Sprintf(`{"type":"ping","id":"p%d-%d"}`, j, i))
			f := c.read(t)
			switch typeOf(f) {
			case "pong":
				pongs++
			case "error":
				if !strings.Contains(string(f), `"rate_limited"`) {
					t.Fatalf("error %s, want rate_limited", f)
				}
				limited++
			default:
				t.Fatalf("answer %s", f)
			}
		}
	}
	if pongs != 5 || limited != 25 {
		t.Fatalf("%d answered, %d rate_limited; want 5 and 25", pongs, limited)
	}
	if n := testutil.ToFloat64(e.gw.throttled.WithLabelValues(throttleUserRate)); n != 25 {
		t.Errorf("throttled{user_rate} = %v, want 25", n)
	}
	// Another user has a bucket of their own.
	other, _ := e.signup(t, "quiet")
	c := dialRaw(t, e.addr, other)
	c.read(t)
	c.write(t, `{"type":"ping","id":"q"}`)
	if f := c.read(t); typeOf(f) != "pong" {
		t.Fatalf("another user's ping answered %s", f)
	}
}

// The connection bound holds across gateways: connections on one count
// on the other, as presence announces them.
func TestMaxUserConnectionsAcrossGateways(t *testing.T) {
	limit := func(c *Config) { c.MaxUserConnections = 3 }
	e := newEnv(t, limit)
	cfg := Config{JWTSecret: []byte(testSecret)}
	limit(&cfg)
	other, otherGW := e.startGateway(t, cfg)
	token, uid := e.signup(t, "roamer")
	user, err := chat.ParseID(uid)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if typ := typeOf(dialRaw(t, e.addr, token).read(t)); typ != "hello" {
			t.Fatalf("first frame %q, want hello", typ)
		}
	}
	eventually(t, 5*time.Second, func() error {
		if n := otherGW.presence.RemoteConnections(user); n != 2 {
			return fmt.Errorf("the second gateway counts %d connections elsewhere, want 2", n)
		}
		return nil
	})
	third := dialRaw(t, other, token)
	if typ := typeOf(third.read(t)); typ != "hello" {
		t.Fatalf("third connection's first frame %q, want hello", typ)
	}
	if got := dialRaw(t, other, token).closeCode(t, 5*time.Second); got != statusTooManyConnections {
		t.Fatalf("fourth connection (second gateway) closed with %d, want %d", got, statusTooManyConnections)
	}
	eventually(t, 5*time.Second, func() error {
		if n := e.gw.presence.RemoteConnections(user); n != 1 {
			return fmt.Errorf("the first gateway counts %d connections elsewhere, want 1", n)
		}
		return nil
	})
	if got := dialRaw(t, e.addr, token).closeCode(t, 5*time.Second); got != statusTooManyConnections {
		t.Fatalf("fourth connection (first gateway) closed with %d, want %d", got, statusTooManyConnections)
	}
	// The third closes: the first gateway learns it and lets one in.
	_ = third.conn.Close()
	eventually(t, 10*time.Second, func() error {
		if n := e.gw.presence.RemoteConnections(user); n != 0 {
			return fmt.Errorf("the first gateway counts %d connections elsewhere, want 0", n)
		}
		return nil
	})
	if typ := typeOf(dialRaw(t, e.addr, token).read(t)); typ != "hello" {
		t.Fatalf("after a close elsewhere, first frame %q, want hello", typ)
	}
}

// startGateway starts another gateway with cfg on e's NATS server and
// store, as a second pod would be.
func (e *env) startGateway(t *testing.T, cfg Config) (string, *Process) {
	t.Helper()
	nc, err := nats.Connect(e.nc.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	gw, err := Start(context.Background(), Options{Config: cfg, NATS: nc})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gw.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = gw.Shutdown(context.Background())
		<-done
		nc.Close()
	})
	return ln.Addr().String(), gw
}
