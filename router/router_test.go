package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The embedded server and nats.go keep a few long-lived helpers
		// until the process ends.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).Start.func1"),
	)
}

// runServer starts an embedded NATS server with JetStream on a free port.
func runServer(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func connect(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// checkFor polls fn until it returns nil or the time is up.
func checkFor(t *testing.T, total time.Duration, fn func() error) {
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
		time.Sleep(5 * time.Millisecond)
	}
}

// recorder keeps the events a Feed hands its handler.
type recorder struct {
	mu     sync.Mutex
	events []*Event
}

func (r *recorder) onEvent(ev *Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) messages(t *testing.T) []chat.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []chat.Message
	for _, ev := range r.events {
		if ev.Kind != KindMessage {
			continue
		}
		if ev.Record != chat.EventMessage {
			t.Fatalf("record of kind %q, want %q", ev.Record, chat.EventMessage)
		}
		var m chat.Message
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			t.Fatalf("record %q: %v", ev.Data, err)
		}
		out = append(out, m)
	}
	return out
}

func TestPublishOrderedAcrossSkewedGatewaysAndFanOut(t *testing.T) {
	s := runServer(t)
	ctx := context.Background()
	nc, js := connect(t, s)
	st, err := EnsureStream(ctx, js, StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// Two gateways; the second's clock runs two seconds behind.
	g1, _ := chat.NewGenerator(1)
	g2, _ := chat.NewGenerator(2)
	p1 := NewPublisher(js, st, g1)
	p2 := NewPublisher(js, st, g2)
	p2.now = func() time.Time { return time.Now().Add(-2 * time.Second) }

	var rec recorder
	in := NewFeed(nc, FeedConfig{Stream: st, Publisher: p1, OnEvent: rec.onEvent})
	defer in.Close()
	if err := in.Subscribe("10"); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	const per = 40
	var wg sync.WaitGroup
	for gi, p := range []*Publisher{p1, p2} {
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					_, _, err := p.Publish(ctx, chat.Message{Conversation: "10", Sender: chat.ID(gi + 1), Body: "x", ClientID: fmt.Sprintf("g%dw%di%d", gi, w, i)})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	checkFor(t, 5*time.Second, func() error {
		if n := len(rec.messages(t)); n != 4*per {
			return fmt.Errorf("received %d of %d", n, 4*per)
		}
		return nil
	})
	got := rec.messages(t)
	for i := 1; i < len(got); i++ {
		if got[i].ID <= got[i-1].ID {
			t.Fatalf("message %d has ID %d after %d: not in ID order", i, got[i].ID, got[i-1].ID)
		}
	}
}

func TestPublishDuplicateReturnsOriginal(t *testing.T) {
	s := runServer(t)
	ctx := context.Background()
	_, js := connect(t, s)
	st, err := EnsureStream(ctx, js, StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := chat.NewGenerator(3)
	p := NewPublisher(js, st, g)
	first, dup, err := p.Publish(ctx, chat.Message{Conversation: "1-2", Sender: 1, Body: "hello", ClientID: "c-1"})
	if err != nil || dup {
		t.Fatal(err, dup)
	}
	// Another gateway (no cached tail) sends meanwhile, then the retry.
	p2 := NewPublisher(js, st, g)
	if _, _, err := p2.Publish(ctx, chat.Message{Conversation: "1-2", Sender: 2, Body: "other", ClientID: "c-1"}); err != nil {
		t.Fatal(err)
	}
	again, dup, err := p.Publish(ctx, chat.Message{Conversation: "1-2", Sender: 1, Body: "different body", ClientID: "c-1"})
	if err != nil {
		t.Fatal(err)
	}
	if !dup || again.ID != first.ID || again.Body != "hello" {
		t.Fatalf("resend gave %+v dup=%v, want the first %+v", again, dup, first)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages, want 2", info.State.Msgs)
	}
}

func TestFeedFillsGaps(t *testing.T) {
	s := runServer(t)
	ctx := context.Background()
	nc, js := connect(t, s)
	st, err := EnsureStream(ctx, js, StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := chat.NewGenerator(4)
	p := NewPublisher(js, st, g)
	var b recorder
	in := NewFeed(nc, FeedConfig{Stream: st, OnEvent: b.onEvent})
	defer in.Close()
	if err := in.Subscribe("7"); err != nil {
		t.Fatal(err)
	}
	if err := in.Subscribe("7"); err != nil {
		t.Fatal(err)
	}
	if in.Subscribed() != 1 {
		t.Fatalf("subscriptions %d, want one per conversation", in.Subscribed())
	}
	nc.Flush()
	send := func(i int) {
		if _, _, err := p.Publish(ctx, chat.Message{Conversation: "7", Sender: 1, Body: "m", ClientID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	send(0)
	checkFor(t, 5*time.Second, func() error {
		if len(b.messages(t)) != 1 {
			return fmt.Errorf("first message not delivered")
		}
		return nil
	})
	// Store two messages the subscription never sees (as if NATS dropped
	// them): publish straight to the stream with republish suppressed by
	// taking the subscription away for a moment is racy, so instead pause
	// delivery by unsubscribing the conversation's NATS subscription.
	sh := in.shard("7")
	sh.mu.Lock()
	sub := sh.convs["7"].sub
	sh.mu.Unlock()
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	send(1)
	send(2)
	newSub, err := nc.ChanSubscribe(chat.ConvSubject("7"), in.ch)
	if err != nil {
		t.Fatal(err)
	}
	sh.mu.Lock()
	sh.convs["7"].sub = newSub
	sh.mu.Unlock()
	nc.Flush()
	send(3)
	checkFor(t, 5*time.Second, func() error {
		if n := len(b.messages(t)); n != 4 {
			return fmt.Errorf("b got %d of 4", n)
		}
		return nil
	})
	got := b.messages(t)
	for i, m := range got {
		if m.ClientID != fmt.Sprint(i) {
			t.Fatalf("message %d is %q: gap not filled in order", i, m.ClientID)
		}
	}
	in.Unsubscribe("7")
	if in.Subscribed() != 0 {
		t.Fatal("subscription kept after Unsubscribe")
	}
}

func TestPresenceAcrossGateways(t *testing.T) {
	s := runServer(t)
	ctx := context.Background()
	nc1, _ := connect(t, s)
	nc2, _ := connect(t, s)
	type change struct {
		user   chat.ID
		online bool
	}
	changes := make(chan change, 16)
	p1, err := NewPresence(ctx, nc1, PresenceConfig{SyncWait: 50 * time.Millisecond, OfflineGrace: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Close()
	p1.Connect(5) // online before the second gateway starts: learnt by sync
	nc1.Flush()
	p2, err := NewPresence(ctx, nc2, PresenceConfig{
		SyncWait: 200 * time.Millisecond, OfflineGrace: 20 * time.Millisecond,
		Heartbeat: 20 * time.Millisecond, Timeout: 100 * time.Millisecond,
		OnChange: func(u chat.ID, on bool) { changes <- change{u, on} },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if !p2.Online(5) {
		t.Fatal("sync did not report user 5 online")
	}
	p1.Connect(6)
	p1.Connect(6)
	expect := func(want change) {
		t.Helper()
		select {
		case c := <-changes:
			if c != want {
				t.Fatalf("change %+v, want %+v", c, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no change, want %+v", want)
		}
	}
	expect(change{6, true})
	p1.Disconnect(6) // one connection left: still online
	p1.Disconnect(6)
	expect(change{6, false})
	// A gateway that dies without a word: its users go offline on their own.
	p1.Close() // announces 5 offline
	expect(change{5, false})
}

func TestLeaseUnique(t *testing.T) {
	s := runServer(t)
	ctx := context.Background()
	_, js := connect(t, s)
	seen := map[int]bool{}
	var leases []*Lease
	for i := 0; i < 20; i++ {
		l, err := AcquireNodeID(ctx, js, LeaseConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if seen[l.Node] {
			t.Fatalf("node %d leased twice", l.Node)
		}
		seen[l.Node] = true
		leases = append(leases, l)
	}
	for _, l := range leases {
		l.Release(ctx)
		l.Release(ctx)
	}
}

func TestPublisherForgetsIdleConversations(t *testing.T) {
	s := runServer(t)
	ctx := context.Background()
	_, js := connect(t, s)
	st, err := EnsureStream(ctx, js, StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := chat.NewGenerator(5)
	p := NewPublisher(js, st, g)
	if _, _, err := p.Publish(ctx, chat.Message{Conversation: "3", Sender: 1, Body: "x", ClientID: "a"}); err != nil {
		t.Fatal(err)
	}
	p.Forget(time.Hour)
	if len(p.convs) != 1 {
		t.Fatalf("a recently used tail was forgotten")
	}
	p.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	p.Forget(time.Hour)
	if len(p.convs) != 0 {
		t.Fatalf("%d idle tails kept", len(p.convs))
	}
}

// Sends that queue up for one conversation go as atomic batches: one
// JetStream round trip for many, IDs still growing in stream order, a
// resend inside a batch still answered with the original.
func TestPublishBatchesOneConversation(t *testing.T) {
	s := runServer(t)
	ctx := context.Background()
	_, js := connect(t, s)
	st, err := EnsureStream(ctx, js, StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := chat.NewGenerator(6)
	p := NewPublisher(js, st, g)
	const n = 200
	first := make([]chat.Message, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, dup, err := p.Publish(ctx, chat.Message{Conversation: "77", Sender: 1, Body: "b", ClientID: fmt.Sprint("c", i)})
			if err != nil || dup {
				t.Errorf("send %d: %v dup=%v", i, err, dup)
			}
			first[i] = m
		}()
	}
	wg.Wait()
	// Resends of every tenth, concurrently with new sends: each resend
	// must come back as its original.
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cid := fmt.Sprint("c", i)
			if i%10 != 0 {
				cid = fmt.Sprint("d", i)
			}
			m, dup, err := p.Publish(ctx, chat.Message{Conversation: "77", Sender: 1, Body: "again", ClientID: cid})
			if err != nil {
				t.Errorf("second round %d: %v", i, err)
				return
			}
			if i%10 == 0 && (!dup || m.ID != first[i].ID || m.Body != "b") {
				t.Errorf("resend of %s gave %+v dup=%v, want the original %d", cid, m, dup, first[i].ID)
			}
		}()
	}
	wg.Wait()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(n + n - n/10); info.State.Msgs != want {
		t.Fatalf("stream holds %d records, want %d (no resend stored twice, nothing lost)", info.State.Msgs, want)
	}
	var prev chat.ID
	batched := 0
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		id, err := chat.ParseID(raw.Header.Get(chat.HdrMsgID))
		if err != nil {
			t.Fatal(err)
		}
		if id <= prev {
			t.Fatalf("record %d has ID %d after %d: IDs not in stream order", seq, id, prev)
		}
		prev = id
		if raw.Header.Get(hdrBatchID) != "" {
			batched++
		}
	}
	if batched == 0 {
		t.Fatal("no record went in a batch: every send took its own round trip")
	}
	t.Logf("%d of %d records went in atomic batches", batched, info.State.Msgs)
}

// Senders that give up while queued behind a batch (their context ends)
// leave the queue: the conversation's turn never passes to a caller that is
// gone, so later sends still go through.
func TestPublishWaiterGivesUp(t *testing.T) {
	s := runServer(t)
	ctx := context.Background()
	_, js := connect(t, s)
	st, err := EnsureStream(ctx, js, StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := chat.NewGenerator(7)
	p := NewPublisher(js, st, g)
	var wg sync.WaitGroup
	gaveUp := 0
	var mu sync.Mutex
	for round := 0; round < 20; round++ {
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sctx := ctx
				if i%2 == 1 {
					var cancel context.CancelFunc
					sctx, cancel = context.WithTimeout(ctx, time.Duration(i)*50*time.Microsecond)
					defer cancel()
				}
				_, _, err := p.Publish(sctx, chat.Message{Conversation: "78", Sender: 1, Body: "b", ClientID: fmt.Sprint("w", round, "-", i)})
				if errors.Is(err, context.DeadlineExceeded) {
					mu.Lock()
					gaveUp++
					mu.Unlock()
				} else if err != nil {
					t.Errorf("send: %v", err)
				}
			}()
		}
		waited := make(chan struct{})
		go func() { wg.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(30 * time.Second):
			t.Fatal("senders still waiting after 30 s: the turn went to a caller that had left")
		}
	}
	t.Logf("%d senders gave up", gaveUp)
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, _, err := p.Publish(lctx, chat.Message{Conversation: "78", Sender: 1, Body: "last", ClientID: "last"}); err != nil {
		t.Fatalf("a send after others gave up: %v (the turn went to a caller that had left)", err)
	}
}

// OnIdle comes once the events waiting are handled, and at least every
// maxEventsPerIdle events of a backlog: a burst costs few idle calls, and
// none comes before the events it covers.
func TestFeedIdleAfterBurst(t *testing.T) {
	s := runServer(t)
	nc, _ := connect(t, s)
	const n = 200
	var (
		mu      sync.Mutex
		handled int
		idles   []int // events handled at each OnIdle
		first   = make(chan struct{})
		release = make(chan struct{})
		once    sync.Once
	)
	in := NewFeed(nc, FeedConfig{
		OnEvent: func(*Event) {
			once.Do(func() { close(first); <-release }) // hold the dispatcher while the burst queues
			mu.Lock()
			handled++
			mu.Unlock()
		},
		OnIdle: func() {
			mu.Lock()
			idles = append(idles, handled)
			mu.Unlock()
		},
	})
	if err := in.Subscribe("9"); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	for i := 0; i < n; i++ {
		if err := nc.Publish(chat.ConvEvtSubject("9"), []byte(`{"type":"x"}`)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			<-first
		}
	}
	nc.Flush()
	checkFor(t, 5*time.Second, func() error {
		if len(in.ch) < n-1 {
			return fmt.Errorf("%d of %d events waiting", len(in.ch), n-1)
		}
		return nil
	})
	close(release)
	checkFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(idles) == 0 || idles[len(idles)-1] != n {
			return fmt.Errorf("idle calls at %v, want the last after all %d events", idles, n)
		}
		return nil
	})
	in.Close()
	mu.Lock()
	defer mu.Unlock()
	prev := 0
	for _, at := range idles {
		if at-prev > maxEventsPerIdle {
			t.Fatalf("%d events between idle calls (%v), want at most %d", at-prev, idles, maxEventsPerIdle)
		}
		prev = at
	}
	// n events, at most one idle call per maxEventsPerIdle of the burst
	// (plus the one after the first event and the one at Close).
	if max := n/maxEventsPerIdle + 3; len(idles) > max {
		t.Fatalf("%d idle calls for a burst of %d (%v), want at most %d", len(idles), n, idles, max)
	}
}

// A gateway whose NATS connection was away missed the announcements made
// meanwhile: after it reconnects it asks the others again, refuses those
// sessions and closes their sockets (OnRevoke).
func TestRevocationsResyncAfterReconnect(t *testing.T) {
	s := runServer(t)
	ncA, _ := connect(t, s)
	ncB, _ := connect(t, s)
	ctx := context.Background()
	cfg := RevocationsConfig{Keep: time.Minute, SyncWait: 100 * time.Millisecond}
	a, err := NewRevocations(ctx, ncA, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var mu sync.Mutex
	var told []chat.ID
	cfgB := cfg
	cfgB.OnRevoke = func(_ chat.ID, sessions []chat.ID) {
		mu.Lock()
		told = append(told, sessions...)
		mu.Unlock()
	}
	b, err := NewRevocations(ctx, ncB, cfgB)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Known to a only, as if its announcement was made while b was away.
	a.Add(7, []chat.ID{4242})
	if b.Revoked(4242) {
		t.Fatal("b knows the session before any sync")
	}
	if err := ncB.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if !b.Revoked(4242) || len(told) != 1 || told[0] != 4242 {
			return fmt.Errorf("after b's reconnect: revoked %v, told %v", b.Revoked(4242), told)
		}
		return nil
	})
}
