package chatclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder collects what OnMessage delivers.
type recorder struct {
	mu  sync.Mutex
	got []Message
}

func (r *recorder) add(m Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, m)
}

func (r *recorder) list() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func sortedIDs(ms []Message) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	slices.SortFunc(ids, CompareIDs)
	return ids
}

func assertOnce(t *testing.T, who string, ms []Message) {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range ms {
		if seen[m.ID] {
			t.Errorf("%s received %s (%q) twice", who, m.ID, m.Body)
		}
		seen[m.ID] = true
	}
}

// A burst whose answers are held back and whose connection is then cut (so
// every send is stored but unacked), then a receiver cut off while messages
// flow: nothing lost, nothing delivered twice, nothing stored twice.
func TestReconnectInTheMiddleOfABurst(t *testing.T) {
	base := startChatDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	anna := signup(t, ctx, base, "anna")
	billy := signup(t, ctx, base, "billy")
	pa := startProxy(t, hostOf(base))
	pb := startProxy(t, hostOf(base))

	var ra, rb recorder
	a, err := Dial(ctx, Config{BaseURL: pa.URL(), Token: anna.Token, OnMessage: ra.add})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	conv, err := a.Direct(ctx, billy.User.Username)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Dial(ctx, Config{BaseURL: pb.URL(), Token: billy.Token, OnMessage: rb.add})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Me().ID != anna.User.ID {
		t.Fatalf("Me() = %+v", a.Me())
	}

	var sent []Message
	body := func(i int) string { return fmt.Sprintf("message %d", i) }
	// Anna learnt of the conversation after her hello, from the answer and
	// the `conversation` frame; sending works either way.
	for i := 0; i < 10; i++ {
		m, err := a.Send(ctx, conv.ID, body(i))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		sent = append(sent, m)
	}

	// The burst: its first half stored but never acked (answers held
	// back), its second half never reaching the server (requests dropped),
	// then the connection cut. Only a resend can bring the second half;
	// resending the first half must not store it twice.
	pa.frozen.Store(true)
	type result struct {
		m   Message
		err error
	}
	results := make(chan result, 20)
	var senders sync.WaitGroup
	burst := func(from, to int) {
		for i := from; i < to; i++ {
			senders.Add(1)
			go func() {
				defer senders.Done()
				m, err := a.Send(ctx, conv.ID, body(i))
				results <- result{m, err}
			}()
		}
	}
	burst(10, 20)
	poll(t, "Billy has the first half of the burst live", 20*time.Second, func() error {
		if n := rb.count(); n != 20 {
			return fmt.Errorf("%d of 20", n)
		}
		return nil
	})
	pa.holdUp.Store(true)
	burst(20, 30)
	poll(t, "the second half in the outbox", 20*time.Second, func() error {
		if n := len(a.Outbox()); n != 20 {
			return fmt.Errorf("%d of 20", n)
		}
		return nil
	})
	if n := rb.count(); n != 20 {
		t.Fatalf("Billy has %d messages, want 20: the second half reached the server", n)
	}
	dialsBefore := pa.dials.Load()
	pa.cut()
	senders.Wait()
	close(results)
	liveIDs := map[string]string{}
	for _, m := range rb.list() {
		liveIDs[m.ClientID] = m.ID
	}
	for r := range results {
		if r.err != nil {
			t.Fatalf("burst send: %v", r.err)
		}
		if first, ok := liveIDs[r.m.ClientID]; ok && first != r.m.ID {
			t.Errorf("ack of the resent %q is %s, want the first stored %s", r.m.Body, r.m.ID, liveIDs[r.m.ClientID])
		}
		sent = append(sent, r.m)
	}
	if pa.dials.Load() <= dialsBefore {
		t.Fatal("Anna did not reconnect")
	}
	if n := len(a.Outbox()); n != 0 {
		t.Fatalf("outbox holds %d after every ack", n)
	}

	// Billy hears nothing, fifteen more go out, then his connection is cut:
	// catch-up after the reconnect must bring all fifteen.
	pb.frozen.Store(true)
	for i := 30; i < 45; i++ {
		m, err := a.Send(ctx, conv.ID, body(i))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		sent = append(sent, m)
	}
	pb.cut()
	poll(t, "Billy caught up", 30*time.Second, func() error {
		if n := rb.count(); n != 45 {
			return fmt.Errorf("%d of 45", n)
		}
		return nil
	})

	want := sortedIDs(sent)
	assertOnce(t, "Anna", ra.list())
	assertOnce(t, "Billy", rb.list())
	if got := sortedIDs(rb.list()); !slices.Equal(got, want) {
		t.Errorf("Billy has %v\nwant %v", got, want)
	}
	if got := sortedIDs(ra.list()); !slices.Equal(got, want) {
		t.Errorf("Anna has %v\nwant %v", got, want)
	}
	var stored []Message
	after := "0"
	for {
		page, err := a.Messages(ctx, conv.ID, HistoryQuery{After: after, Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, page.Messages...)
		if page.NextAfter == nil {
			break
		}
		after = *page.NextAfter
	}
	if len(stored) != 45 {
		t.Errorf("the server stored %d messages, want 45", len(stored))
	}
	clientIDs := map[string]bool{}
	for _, m := range stored {
		if clientIDs[m.ClientID] {
			t.Errorf("client_id %s stored twice", m.ClientID)
		}
		clientIDs[m.ClientID] = true
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal("a second Close:", err)
	}
	if _, err := a.Send(ctx, conv.ID, "after close"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}
}

func TestRequestsAndErrors(t *testing.T) {
	base := startChatDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	anna := signup(t, ctx, base, "anna")
	billy := signup(t, ctx, base, "billy")

	if _, err := Dial(ctx, Config{BaseURL: base, Token: "bad"}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Dial with a bad token: %v, want ErrUnauthorized", err)
	}
	if _, err := Login(ctx, nil, base, anna.User.Username, "wrong password"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Login with a wrong password: %v", err)
	}

	events := make(chan Event, 16)
	b, err := Dial(ctx, Config{BaseURL: base, Token: billy.Token, OnEvent: func(e Event) {
		select {
		case events <- e:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := Dial(ctx, Config{BaseURL: base, Token: anna.Token})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	conv, err := a.Direct(ctx, billy.User.Username)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(ctx, conv.ID, "   "); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("a blank body: %v, want ErrInvalidMessage", err)
	}
	var se *ServerError
	if _, err := a.History(ctx, "999", HistoryQuery{}); !errors.As(err, &se) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("history of a conversation not joined: %v", err)
	}
	m1, err := a.SendWithClientID(ctx, conv.ID, "same-id", "first")
	if err != nil {
		t.Fatal(err)
	}
	m2, err := a.SendWithClientID(ctx, conv.ID, "same-id", "second")
	if err != nil || m2.ID != m1.ID || m2.Body != "first" {
		t.Fatalf("a resent client_id: %+v %v, want the first message %+v", m2, err, m1)
	}
	page, err := a.History(ctx, conv.ID, HistoryQuery{Limit: 10})
	if err != nil || len(page.Messages) != 1 || page.Messages[0].ID != m1.ID || page.NextBefore != nil {
		t.Fatalf("history: %+v %v", page, err)
	}
	if err := a.Typing(ctx, conv.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.Read(ctx, conv.ID, m1.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for !got[FrameTyping] || !got[FrameRead] {
		select {
		case e := <-events:
			if e.Conversation == conv.ID && e.User == anna.User.ID {
				got[e.Type] = true
			}
		case <-deadline:
			t.Fatalf("Billy saw %v, want typing and read from Anna", got)
		}
	}
}

func TestCompareIDs(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"9", "10", -1},
		{"10", "9", 1},
		{"18446744073709551615", "18446744073709551614", 1},
		{"007", "7", 0},
		{"0", "1", -1},
		{"0", "000", 0},
	}
	for _, c := range cases {
		if got := CompareIDs(c.a, c.b); got != c.want {
			t.Errorf("CompareIDs(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	c := &Client{cfg: Config{MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}}
	for n, top := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second} {
		for range 20 {
			if d := c.backoff(n); d < top/2 || d > top {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, top/2, top)
			}
		}
	}
	if d := c.backoff(40); d > 30*time.Second || d < 15*time.Second {
		t.Fatalf("backoff(40) = %v, want capped at 30s", d)
	}
}
