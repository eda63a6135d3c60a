package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/bolt"
	"github.com/chatcluster/chat/store/storeclient"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitFor polls cond every few milliseconds until it returns nil or the
// deadline passes.
func waitFor(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still after %v: %v", d, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runNATS starts an embedded NATS server with JetStream on a free port.
func runNATS(t testing.TB) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

func connect(t testing.TB, ns *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(0))
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

// createStream creates the message stream as CONTRACT.md describes it (the
// router package owns it in production).
func createStream(t testing.TB, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	st, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name:        store.DefaultStream,
		Subjects:    []string{store.DefaultFilterSubject},
		Storage:     jetstream.FileStorage,
		Replicas:    1,
		Duplicates:  10 * time.Minute,
		MaxAge:      24 * time.Hour,
		AllowDirect: true,
		RePublish: &jetstream.RePublish{
			Source:      "chat.msg.*",
			Destination: "chat.conv.{{wildcard(1)}}.msg",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func openBolt(t testing.TB) *bolt.Backend {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "chat.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// env is one NATS server with the stream and a connection to it.
type env struct {
	ns *server.Server
	nc *nats.Conn
	js jetstream.JetStream
	st jetstream.Stream
}

func newEnv(t testing.TB) *env {
	ns := runNATS(t)
	nc, js := connect(t, ns)
	return &env{ns: ns, nc: nc, js: js, st: createStream(t, js)}
}

// fastConfig keeps failure tests short.
func fastConfig() store.ServiceConfig {
	return store.ServiceConfig{
		InfoInterval:   20 * time.Millisecond,
		SetupRetry:     20 * time.Millisecond,
		RetryBackoff:   5 * time.Millisecond,
		RedeliverDelay: 20 * time.Millisecond,
	}
}

// started is a running store process.
type started struct {
	p   *store.Process
	svc *store.Service
	reg *prometheus.Registry
}

// startService starts a store process (store.Start, as chat store and chat
// dev do) on its own connection and stops it at the end of the test,
// checking that its Service ended without an error.
func startService(t testing.TB, e *env, b store.Backend, cfg store.ServiceConfig) *started {
	t.Helper()
	nc, js := connect(t, e.ns)
	reg := prometheus.NewRegistry()
	p, err := store.Start(t.Context(), store.Options{
		NATS: nc, JetStream: js, Backend: b, Config: cfg, Registry: reg, Log: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &started{p: p, svc: p.Service(), reg: reg}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := p.Err(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

func waitReady(t testing.TB, svc *store.Service) {
	t.Helper()
	waitFor(t, 10*time.Second, func() error {
		if !svc.Ready() {
			return errors.New("service not ready")
		}
		return nil
	})
}

// publisher publishes valid messages the way the router does.
type publisher struct {
	t   testing.TB
	js  jetstream.JetStream
	gen *chat.Generator
	n   atomic.Int64
}

func newPublisher(t testing.TB, js jetstream.JetStream) *publisher {
	gen, err := chat.NewGenerator(900)
	if err != nil {
		t.Fatal(err)
	}
	return &publisher{t: t, js: js, gen: gen}
}

func (p *publisher) publish(conv string, sender chat.ID) (chat.Message, uint64) {
	p.t.Helper()
	n := p.n.Add(1)
	m := chat.Message{
		ID: p.gen.Next(), Conversation: conv, Sender: sender,
		Body: fmt.Sprintf("message %d", n), SentAt: time.Now().UTC().Truncate(time.Millisecond),
		ClientID: fmt.Sprintf("c-%d", n),
	}
	data := m.AppendJSON(nil)
	ack, err := p.js.Publish(p.t.Context(), "chat.msg."+conv, data,
		jetstream.WithMsgID(fmt.Sprintf("%s/%s/%s", conv, sender, m.ClientID)))
	if err != nil {
		p.t.Fatalf("publish: %v", err)
	}
	return m, ack.Sequence
}

func (p *publisher) publishN(conv string, sender chat.ID, n int) ([]chat.Message, uint64) {
	p.t.Helper()
	var last uint64
	out := make([]chat.Message, 0, n)
	for range n {
		m, seq := p.publish(conv, sender)
		out = append(out, m)
		last = seq
	}
	return out, last
}

// storedCount counts conv's messages in b (pages of 200, oldest first).
func storedCount(ctx context.Context, b store.Backend, conv string) (int, error) {
	n := 0
	after := chat.ID(1) // After set: oldest first
	for {
		msgs, more, err := b.Messages(ctx, conv, chat.Page{After: after, Limit: 200})
		if err != nil {
			return 0, err
		}
		n += len(msgs)
		if len(msgs) > 0 {
			after = msgs[len(msgs)-1].ID
		}
		if !more {
			return n, nil
		}
	}
}

func consumerInfo(t testing.TB, e *env) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := e.js.Consumer(t.Context(), store.DefaultStream, store.DefaultDurable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// waitAcked waits until the consumer acked everything up to seq.
func waitAcked(t testing.TB, e *env, seq uint64) {
	t.Helper()
	waitFor(t, 10*time.Second, func() error {
		info := consumerInfo(t, e)
		if info.AckFloor.Stream < seq || info.NumAckPending != 0 {
			return fmt.Errorf("ack floor %d (want %d), ack pending %d", info.AckFloor.Stream, seq, info.NumAckPending)
		}
		return nil
	})
}

// sameIDs reports whether got holds exactly the IDs of want, in any order.
func sameIDs(got, want []chat.Message) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d messages, want %d", len(got), len(want))
	}
	seen := make(map[chat.ID]bool, len(want))
	for _, m := range want {
		seen[m.ID] = true
	}
	for _, m := range got {
		if !seen[m.ID] {
			return fmt.Errorf("unexpected message %s", m.ID)
		}
		delete(seen, m.ID)
	}
	return nil
}

func TestConsumeStoresAndAcks(t *testing.T) {
	e := newEnv(t)
	b := openBolt(t)
	s := startService(t, e, b, store.ServiceConfig{})
	waitReady(t, s.svc)
	p := newPublisher(t, e.js)

	want := map[string][]chat.Message{}
	var last uint64
	for i := range 120 {
		conv := fmt.Sprintf("%d", 1000+i%3)
		m, seq := p.publish(conv, 7)
		want[conv] = append(want[conv], m)
		last = seq
	}
	waitAcked(t, e, last)
	for conv, msgs := range want {
		got, more, err := b.Messages(t.Context(), conv, chat.Page{After: 1, Limit: 200}) // oldest first
		if err != nil {
			t.Fatal(err)
		}
		if more {
			t.Errorf("%s: more = true", conv)
		}
		if err := sameIDs(got, msgs); err != nil {
			t.Errorf("%s: %v", conv, err)
		}
		for i, m := range got {
			if m.Body != msgs[i].Body || m.ClientID != msgs[i].ClientID || m.Sender != 7 || !m.SentAt.Equal(msgs[i].SentAt) {
				t.Errorf("%s: stored %+v, published %+v", conv, m, msgs[i])
				break
			}
		}
	}
	if got := metricValue(t, s.reg, "chat_store_messages_written_total"); got != 120 {
		t.Errorf("written_total = %v, want 120", got)
	}
	if got := metricValue(t, s.reg, "chat_store_messages_consumed_total"); got < 120 {
		t.Errorf("consumed_total = %v, want >= 120", got)
	}
}

func TestHistoryReadYourWrites(t *testing.T) {
	e := newEnv(t)
	b := openBolt(t)
	s := startService(t, e, b, store.ServiceConfig{})
	waitReady(t, s.svc)
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	p := newPublisher(t, e.js)

	// Several rounds: each asks right after its last publish was acked.
	var all []chat.Message
	for round := range 5 {
		msgs, _ := p.publishN("42", 1, 40)
		all = append(all, msgs...)
		got, more, err := c.History(t.Context(), "42", chat.Page{Limit: 200})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if more {
			t.Fatalf("round %d: more = true", round)
		}
		if err := sameIDs(got, all); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if got[0].ID != all[len(all)-1].ID {
			t.Fatalf("round %d: newest first expected, got %s first", round, got[0].ID)
		}
	}
	// A conversation that never had a message needs no wait.
	got, more, err := c.History(t.Context(), "43", chat.Page{})
	if err != nil || len(got) != 0 || more {
		t.Fatalf("empty conversation: %v %v %v", got, more, err)
	}
}

// gatedBackend holds SaveMessages until its gate opens.
type gatedBackend struct {
	store.Backend
	gate    chan struct{}
	entered atomic.Int64
}

func (g *gatedBackend) SaveMessages(ctx context.Context, msgs []chat.Message) error {
	g.entered.Add(1)
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Backend.SaveMessages(ctx, msgs)
}

func TestHistoryWaitsForSlowBackend(t *testing.T) {
	e := newEnv(t)
	inner := openBolt(t)
	b := &gatedBackend{Backend: inner, gate: make(chan struct{})}
	s := startService(t, e, b, store.ServiceConfig{SaveTimeout: 30 * time.Second})
	waitReady(t, s.svc)
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{Timeout: 20 * time.Second})
	p := newPublisher(t, e.js)

	want, _ := p.publishN("7", 1, 50)
	type result struct {
		msgs []chat.Message
		err  error
	}
	res := make(chan result, 1)
	go func() {
		msgs, _, err := c.History(context.Background(), "7", chat.Page{Limit: 100})
		res <- result{msgs, err}
	}()
	// The request is waiting while the write is held: nothing is stored yet.
	waitFor(t, 5*time.Second, func() error {
		if s.svc.Waiters() == 0 || b.entered.Load() == 0 {
			return fmt.Errorf("waiters %d, writes entered %d", s.svc.Waiters(), b.entered.Load())
		}
		return nil
	})
	if n, err := storedCount(t.Context(), inner, "7"); err != nil || n != 0 {
		t.Fatalf("stored before the gate opened: %d %v", n, err)
	}
	close(b.gate)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := sameIDs(r.msgs, want); err != nil {
		t.Fatal(err)
	}
}

// failingBackend fails SaveMessages while fail is set.
type failingBackend struct {
	store.Backend
	fail  atomic.Bool
	tries atomic.Int64
}

var errDown = errors.New("database down")

func (f *failingBackend) SaveMessages(ctx context.Context, msgs []chat.Message) error {
	f.tries.Add(1)
	if f.fail.Load() {
		return errDown
	}
	return f.Backend.SaveMessages(ctx, msgs)
}

func TestBackendFailureLosesNothing(t *testing.T) {
	e := newEnv(t)
	inner := openBolt(t)
	b := &failingBackend{Backend: inner}
	b.fail.Store(true)
	cfg := fastConfig()
	cfg.HistoryWait = 300 * time.Millisecond
	cfg.SaveAttempts = 2
	s := startService(t, e, b, cfg)
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	p := newPublisher(t, e.js)

	want, last := p.publishN("99", 3, 30)
	waitFor(t, 5*time.Second, func() error {
		if b.tries.Load() < 3 {
			return fmt.Errorf("%d write attempts", b.tries.Load())
		}
		return nil
	})
	if s.svc.Ready() {
		t.Error("ready while every write fails")
	}
	_, _, err := c.History(t.Context(), "99", chat.Page{})
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("history while the backend fails: %v, want chat.ErrUnavailable", err)
	}
	if info := consumerInfo(t, e); info.AckFloor.Stream != 0 {
		t.Fatalf("acked up to %d while nothing was written", info.AckFloor.Stream)
	}
	if n, _ := storedCount(t.Context(), inner, "99"); n != 0 {
		t.Fatalf("%d stored", n)
	}

	b.fail.Store(false)
	waitAcked(t, e, last)
	got, _, err := c.History(t.Context(), "99", chat.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := sameIDs(got, want); err != nil {
		t.Fatal(err)
	}
	waitReady(t, s.svc)
	if v := metricValue(t, s.reg, "chat_store_backend_errors_total", "op", "save_messages"); v < 2 {
		t.Errorf("backend_errors_total{save_messages} = %v", v)
	}
}

func TestPoisonMessageIsTerminated(t *testing.T) {
	e := newEnv(t)
	b := openBolt(t)
	s := startService(t, e, b, store.ServiceConfig{})
	waitReady(t, s.svc)
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	p := newPublisher(t, e.js)

	before, _ := p.publishN("5", 1, 3)
	for _, bad := range [][]byte{
		[]byte("not json"),
		[]byte(`{"id":"1","conversation":"6","sender":"1","body":"x","sent_at":"2026-01-01T00:00:00.000Z","client_id":"a"}`), // other conversation
		[]byte(`{"id":"0","conversation":"5","sender":"1","body":"x","sent_at":"2026-01-01T00:00:00.000Z","client_id":"a"}`), // no id
	} {
		if _, err := e.js.Publish(t.Context(), "chat.msg.5", bad); err != nil {
			t.Fatal(err)
		}
	}
	after, last := p.publishN("5", 1, 3)
	waitAcked(t, e, last)
	got, _, err := c.History(t.Context(), "5", chat.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sameIDs(got, append(before, after...)); err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, s.reg, "chat_store_messages_invalid_total"); v != 3 {
		t.Errorf("invalid_total = %v, want 3", v)
	}
}

// countingBackend counts how often each message ID was written.
type countingBackend struct {
	store.Backend
	mu     sync.Mutex
	counts map[chat.ID]int
	by     map[string]int
}

func (c *countingBackend) saver(name string) store.Backend {
	return &namedSaver{c: c, name: name, PushBackend: c, SessionBackend: c.Backend}
}

type namedSaver struct {
	c    *countingBackend
	name string
	store.PushBackend
	store.SessionBackend
}

func (n *namedSaver) SaveMessages(ctx context.Context, msgs []chat.Message) error {
	if err := n.c.Backend.SaveMessages(ctx, msgs); err != nil {
		return err
	}
	n.c.mu.Lock()
	for _, m := range msgs {
		n.c.counts[m.ID]++
	}
	n.c.by[n.name] += len(msgs)
	n.c.mu.Unlock()
	return nil
}

// The rest of namedSaver delegates to the shared backend.
func (n *namedSaver) CreateAccount(ctx context.Context, a chat.Account) (chat.Account, error) {
	return n.c.CreateAccount(ctx, a)
}
func (n *namedSaver) AccountByUsername(ctx context.Context, u string) (chat.Account, error) {
	return n.c.AccountByUsername(ctx, u)
}
func (n *namedSaver) Users(ctx context.Context, ids []chat.ID) ([]chat.User, error) {
	return n.c.Users(ctx, ids)
}
func (n *namedSaver) SearchUsers(ctx context.Context, p string, l int) ([]chat.User, error) {
	return n.c.SearchUsers(ctx, p, l)
}
func (n *namedSaver) CreateConversation(ctx context.Context, c chat.Conversation) (chat.Conversation, bool, error) {
	return n.c.CreateConversation(ctx, c)
}
func (n *namedSaver) AddMembers(ctx context.Context, c string, u []chat.ID, at time.Time) (chat.Conversation, []chat.ID, error) {
	return n.c.AddMembers(ctx, c, u, at)
}
func (n *namedSaver) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	return n.c.Conversation(ctx, id)
}
func (n *namedSaver) Conversations(ctx context.Context, u chat.ID, l int) ([]chat.Summary, error) {
	return n.c.Conversations(ctx, u, l)
}
func (n *namedSaver) ConversationPage(ctx context.Context, u chat.ID, p chat.ListPage) ([]chat.Summary, bool, error) {
	return n.c.ConversationPage(ctx, u, p)
}
func (n *namedSaver) RemoveMember(ctx context.Context, c string, u chat.ID) (chat.Conversation, bool, error) {
	return n.c.RemoveMember(ctx, c, u)
}
func (n *namedSaver) Members(ctx context.Context, c string, after chat.ID, l int) ([]chat.ID, bool, error) {
	return n.c.Members(ctx, c, after, l)
}
func (n *namedSaver) Messages(ctx context.Context, c string, p chat.Page) ([]chat.Message, bool, error) {
	return n.c.Messages(ctx, c, p)
}
func (n *namedSaver) MarkRead(ctx context.Context, c string, u chat.ID, m chat.ID) (chat.ID, bool, error) {
	return n.c.MarkRead(ctx, c, u, m)
}
func (n *namedSaver) ApplyChanges(ctx context.Context, cs []chat.Change) error {
	return n.c.Backend.ApplyChanges(ctx, cs)
}
func (n *namedSaver) Message(ctx context.Context, c string, id, v chat.ID) (chat.Message, error) {
	return n.c.Backend.Message(ctx, c, id, v)
}
func (n *namedSaver) Changes(ctx context.Context, c string, p chat.Page) ([]chat.Change, bool, error) {
	return n.c.Backend.Changes(ctx, c, p)
}
func (n *namedSaver) Close() error { return nil }

func TestReplicasShareTheConsumer(t *testing.T) {
	e := newEnv(t)
	shared := &countingBackend{Backend: openBolt(t), counts: map[chat.ID]int{}, by: map[string]int{}}
	cfg := store.ServiceConfig{Prefetch: 50, BatchSize: 20}
	s1 := startService(t, e, shared.saver("a"), cfg)
	s2 := startService(t, e, shared.saver("b"), cfg)
	waitReady(t, s1.svc)
	waitReady(t, s2.svc)
	p := newPublisher(t, e.js)

	const n = 600
	var want []chat.Message
	var last uint64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			msgs, seq := p.publishN(fmt.Sprintf("%d", 500+w), 1, n/6)
			mu.Lock()
			want = append(want, msgs...)
			last = max(last, seq)
			mu.Unlock()
		})
	}
	wg.Wait()
	waitAcked(t, e, last)

	shared.mu.Lock()
	defer shared.mu.Unlock()
	if len(shared.counts) != n {
		t.Errorf("%d distinct messages written, want %d", len(shared.counts), n)
	}
	for _, m := range want {
		if c := shared.counts[m.ID]; c != 1 {
			t.Errorf("message %s written %d times", m.ID, c)
		}
	}
	t.Logf("written by replica: %v", shared.by)
	// Both replicas answer history for the same data.
	for _, conv := range []string{"500", "505"} {
		got, _, err := storeclient.NewClient(e.nc, storeclient.ClientConfig{}).History(t.Context(), conv, chat.Page{Limit: 200})
		if err != nil || len(got) != n/6 {
			t.Errorf("history %s: %d messages, %v", conv, len(got), err)
		}
	}
}

func TestStreamCreatedAfterStart(t *testing.T) {
	ns := runNATS(t)
	nc, js := connect(t, ns)
	e := &env{ns: ns, nc: nc, js: js}
	b := openBolt(t)
	s := startService(t, e, b, fastConfig())
	// Requests are served while the consumer cannot start; history is not.
	c := storeclient.NewClient(nc, storeclient.ClientConfig{})
	waitFor(t, 5*time.Second, func() error {
		if _, err := c.Conversation(t.Context(), "77"); !errors.Is(err, chat.ErrNotFound) {
			return fmt.Errorf("conversation: %v", err)
		}
		return nil
	})
	if s.svc.Ready() {
		t.Fatal("ready without a stream")
	}
	e.st = createStream(t, js)
	waitReady(t, s.svc)
	p := newPublisher(t, js)
	want, _ := p.publishN("77", 1, 5)
	got, _, err := c.History(t.Context(), "77", chat.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sameIDs(got, want); err != nil {
		t.Fatal(err)
	}
}

// pingBackend reports its database unreachable while down is set.
type pingBackend struct {
	store.Backend
	down atomic.Bool
}

func (p *pingBackend) Ping(context.Context) error {
	if p.down.Load() {
		return errDown
	}
	return nil
}

func TestReadyFollowsPing(t *testing.T) {
	e := newEnv(t)
	b := &pingBackend{Backend: openBolt(t)}
	s := startService(t, e, b, fastConfig())
	waitReady(t, s.svc)
	if v := metricValue(t, s.reg, "chat_store_ready"); v != 1 {
		t.Errorf("chat_store_ready = %v while ready", v)
	}
	b.down.Store(true)
	waitFor(t, 5*time.Second, func() error {
		if s.svc.Ready() {
			return errors.New("still ready")
		}
		return nil
	})
	if v := metricValue(t, s.reg, "chat_store_ready"); v != 0 {
		t.Errorf("chat_store_ready = %v while not ready", v)
	}
	b.down.Store(false)
	waitReady(t, s.svc)
}

func TestShutdown(t *testing.T) {
	e := newEnv(t)
	nc, js := connect(t, e.ns)
	svc, err := store.NewService(store.ServiceConfig{}, openBolt(t), nc, js, 1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Shutdown without Run, twice; Run afterwards refuses.
	if err := svc.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := svc.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := svc.Run(t.Context()); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Run after Shutdown: %v", err)
	}

	// A running service: Shutdown twice, concurrently and after.
	svc, err = store.NewService(store.ServiceConfig{}, openBolt(t), nc, js, 1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(context.Background()) }()
	waitReady(t, svc)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := svc.Shutdown(t.Context()); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := svc.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if svc.Ready() {
		t.Fatal("ready after Shutdown")
	}
	// No responder is left: requests fail as unavailable.
	c := storeclient.NewClient(nc, storeclient.ClientConfig{Timeout: time.Second})
	if _, err := c.Conversation(t.Context(), "1"); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("after Shutdown: %v", err)
	}
}

func TestRunEndsWithContext(t *testing.T) {
	e := newEnv(t)
	nc, js := connect(t, e.ns)
	svc, err := store.NewService(store.ServiceConfig{}, openBolt(t), nc, js, 1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	waitReady(t, svc)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := svc.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownDeadlineCutsWritesShort(t *testing.T) {
	e := newEnv(t)
	nc, js := connect(t, e.ns)
	inner := openBolt(t)
	b := &gatedBackend{Backend: inner, gate: make(chan struct{})} // never opens
	svc, err := store.NewService(store.ServiceConfig{SaveTimeout: time.Minute}, b, nc, js, 1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(context.Background()) }()
	waitReady(t, svc)
	_, last := newPublisher(t, e.js).publishN("3", 1, 5)
	waitFor(t, 5*time.Second, func() error {
		if b.entered.Load() == 0 {
			return errors.New("no write started")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := svc.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want deadline exceeded", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Nothing was acked: a new replica writes every message.
	if info := consumerInfo(t, e); info.AckFloor.Stream != 0 {
		t.Fatalf("ack floor %d after cancelled writes", info.AckFloor.Stream)
	}
	cfg := fastConfig()
	cfg.AckWait = time.Second // in case a Nak of the cut-short batch was lost
	s2 := startService(t, e, inner, cfg)
	waitReady(t, s2.svc)
	waitAcked(t, e, last)
	if n, err := storedCount(t.Context(), inner, "3"); err != nil || n != 5 {
		t.Fatalf("stored %d, %v", n, err)
	}
}

func TestNewServiceRejects(t *testing.T) {
	e := newEnv(t)
	b := openBolt(t)
	if _, err := store.NewService(store.ServiceConfig{}, b, e.nc, e.js, chat.MaxNode+1, nil, nil); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("node out of range: %v", err)
	}
	if _, err := store.NewService(store.ServiceConfig{FilterSubject: "chat.msg.>"}, b, e.nc, e.js, 1, nil, nil); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("bad filter: %v", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := store.NewService(store.ServiceConfig{}, b, e.nc, e.js, 1, reg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := store.NewService(store.ServiceConfig{}, b, e.nc, e.js, 2, reg, nil); err == nil {
		t.Error("second service on one registry: no error")
	}
}

// BenchmarkConsume measures how fast one Service writes the stream into the
// bolt backend (fsync per batch): messages published ahead, then consumed.
func BenchmarkConsume(b *testing.B) {
	e := newEnv(b)
	s := startService(b, e, openBolt(b), store.ServiceConfig{})
	waitReady(b, s.svc)
	gen, _ := chat.NewGenerator(901)
	var last uint64
	futures := make([]jetstream.PubAckFuture, 0, 1000)
	flush := func() {
		for _, f := range futures {
			select {
			case ack := <-f.Ok():
				last = max(last, ack.Sequence)
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
		futures = futures[:0]
	}
	b.ResetTimer()
	for i := range b.N {
		m := chat.Message{ID: gen.Next(), Conversation: fmt.Sprint(i % 100), Sender: 1, Body: "benchmark message body", SentAt: time.Now(), ClientID: fmt.Sprint(i)}
		f, err := e.js.PublishAsync("chat.msg."+m.Conversation, m.AppendJSON(nil))
		if err != nil {
			b.Fatal(err)
		}
		if futures = append(futures, f); len(futures) == cap(futures) {
			flush()
		}
	}
	flush()
	waitAcked(b, e, last)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSendThenHistory measures read-your-writes: one publish, then a
// history request that must include it.
func BenchmarkSendThenHistory(b *testing.B) {
	e := newEnv(b)
	s := startService(b, e, openBolt(b), store.ServiceConfig{})
	waitReady(b, s.svc)
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	p := newPublisher(b, e.js)
	b.ResetTimer()
	for range b.N {
		m, _ := p.publish("1", 1)
		got, _, err := c.History(b.Context(), "1", chat.Page{Limit: 1})
		if err != nil || len(got) != 1 || got[0].ID != m.ID {
			b.Fatalf("history: %v %v", got, err)
		}
	}
}
