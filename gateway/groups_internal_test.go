package gateway

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The figures of issue 11's benchmarks, as tests that report them. Sizes
// come from the environment so that the lead can run them at full size on
// a quiet machine (docs/BENCHMARKS.md has the commands); the defaults are
// small enough for every test run, and the bounds are asserted at any size.

func envSize(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// fastUsers makes n accounts through the store directly (a sign-up over
// HTTP costs an argon2id hash) and a token for each.
func fastUsers(t testing.TB, e *env, prefix string, n int) ([]chat.User, []string) {
	t.Helper()
	st := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	users := make([]chat.User, n)
	tokens := make([]string, n)
	for i := range users {
		u, err := st.Signup(context.Background(), chat.Account{
			User:         chat.User{Username: fmt.Sprintf("%s%d", prefix, i), DisplayName: fmt.Sprintf("%s %d", prefix, i)},
			PasswordHash: "not-a-hash",
		})
		if err != nil {
			t.Fatalf("signup %d: %v", i, err)
		}
		users[i] = u
		// A session that was never revoked passes (tokens name theirs).
		sess := chat.Session{ID: 1, ExpiresAt: time.Now().Add(time.Hour)}
		if tokens[i], err = e.gw.auth.issue(u, sess, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return users, tokens
}

// fastGroup makes a group of members (the first is its creator), adding
// them a page (chat.MaxMembersPage) at a time.
func fastGroup(t testing.TB, e *env, title string, members []chat.User) string {
	t.Helper()
	st := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	ids := make([]chat.ID, len(members))
	for i, u := range members {
		ids[i] = u.ID
	}
	first := min(len(ids), chat.MaxMembersPage)
	c, err := st.Group(context.Background(), title, ids[0], ids[1:first])
	if err != nil {
		t.Fatalf("group %s: %v", title, err)
	}
	for start := first; start < len(ids); start += chat.MaxMembersPage {
		if _, _, err := st.AddMembers(context.Background(), c.ID, ids[0], ids[start:min(start+chat.MaxMembersPage, len(ids))]); err != nil {
			t.Fatalf("add to %s: %v", title, err)
		}
	}
	return c.ID
}

// TestPresenceFramesPerMember connects the N members of one group and
// counts the presence frames the gateway queues meanwhile: a big group's
// members get no presence frames for each other (presence is on request
// there), so the total is O(N), at most 10 per member. Before, every
// connect told every connected co-member: N²/2 frames.
//
//	CHAT_PRESENCE_MEMBERS=1000 go test -run TestPresenceFramesPerMember -v ./gateway/
func TestPresenceFramesPerMember(t *testing.T) {
	n := envSize("CHAT_PRESENCE_MEMBERS", 150)
	e := newEnv(t, nil)
	users, tokens := fastUsers(t, e, "pm", n+1)
	members, control := users[:n], users[n]
	fastGroup(t, e, "everyone", members)
	// The control user shares a direct conversation with member 0: their
	// presence frame, sent after everyone else's, is the barrier.
	st := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	if _, _, err := st.Direct(context.Background(), members[0].ID, control.ID); err != nil {
		t.Fatal(err)
	}
	presence := func() float64 { return testutil.ToFloat64(e.gw.m.framesOut.WithLabelValues("presence")) }
	before := presence()
	start := time.Now()
	clients := make([]*rawClient, 0, n+1)
	defer func() {
		for _, c := range clients {
			_ = c.conn.Close()
		}
	}()
	for i := range members {
		c := dialRaw(t, e.addr, tokens[i])
		if typ := typeOf(c.read(t)); typ != "hello" {
			t.Fatalf("member %d: first frame %s", i, typ)
		}
		clients = append(clients, c)
	}
	connected := time.Since(start)
	c := dialRaw(t, e.addr, tokens[n])
	clients = append(clients, c)
	if typ := typeOf(c.read(t)); typ != "hello" {
		t.Fatalf("control: first frame %s", typ)
	}
	// Presence events are handled in the order they were published (one
	// subscription), so once the control user's frame is counted, every
	// member's has been.
	eventually(t, 10*time.Second, func() error {
		if presence()-before < 1 {
			return fmt.Errorf("the control user's presence frame was not sent")
		}
		return nil
	})
	frames := presence() - before - 1
	t.Logf("%d members of one group connected in %v: %.0f presence frames (%.2f per member)",
		n, connected.Round(time.Millisecond), frames, frames/float64(n))
	if frames > 10*float64(n) {
		t.Errorf("%.0f presence frames for %d members connecting: over 10 per member", frames, n)
	}
}

// TestHelloSizeBigGroups: a user in C conversations of M members each gets
// a hello that does not grow with M (members are not inline above
// chat.MaxInlineMembers): at most 16 KB for 100 conversations.
//
//	CHAT_HELLO_CONVS=100 CHAT_HELLO_MEMBERS=1000 go test -run TestHelloSizeBigGroups -v ./gateway/
func TestHelloSizeBigGroups(t *testing.T) {
	convs := envSize("CHAT_HELLO_CONVS", 10)
	m := envSize("CHAT_HELLO_MEMBERS", chat.MaxInlineMembers+50)
	e := newEnv(t, nil)
	users, tokens := fastUsers(t, e, "hs", m)
	for i := range convs {
		fastGroup(t, e, fmt.Sprintf("group %d", i), users)
	}
	c := dialRaw(t, e.addr, tokens[0])
	defer c.conn.Close()
	start := time.Now()
	hello := c.read(t)
	if typeOf(hello) != "hello" {
		t.Fatalf("first frame %.200s", hello)
	}
	t.Logf("hello for %d conversations of %d members: %d bytes (read in %v)", convs, m, len(hello), time.Since(start))
	if got := strings.Count(string(hello), `"member_count":`); got != convs {
		t.Errorf("hello lists %d conversations, want %d", got, convs)
	}
	if limit := 16 << 10 * convs / 100; m > chat.MaxInlineMembers && len(hello) > max(limit, 2048) {
		t.Errorf("hello is %d bytes, over %d (16 KB per 100 conversations)", len(hello), limit)
	}
}
