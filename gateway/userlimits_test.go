package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMaxUserConnections(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxUserConnections = 3 })
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
