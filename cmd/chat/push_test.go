package main

import (
	"bufio"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/router"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/bolt"
	"github.com/chatcluster/chat/store/push"
	"github.com/chatcluster/chat/store/storeclient"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// pushEnv is what chat push runs against: a NATS server on a free port (a
// child process connects to it), the message stream, a store service on
// bbolt in this process, and a receiver standing in for both a push
// gateway and a browser's push service.
type pushEnv struct {
	t    *testing.T
	ns   *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	st   *storeclient.Client
	gen  *chat.Generator
	recv *receiver
}

func newPushEnv(t *testing.T) *pushEnv {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := router.EnsureStream(t.Context(), js, router.StreamConfig{Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	b, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	svc, err := store.NewService(store.ServiceConfig{}, b, nc, js, 7, prometheus.NewRegistry(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
		<-done
	})
	gen, err := chat.NewGenerator(901)
	if err != nil {
		t.Fatal(err)
	}
	e := &pushEnv{t: t, ns: ns, nc: nc, js: js, st: storeclient.NewClient(nc, storeclient.ClientConfig{}), gen: gen, recv: newReceiver(t)}
	if err := pollUntil(10*time.Second, 20*time.Millisecond, func() error {
		_, err := e.st.Users(t.Context(), nil)
		return err
	}); err != nil {
		t.Fatalf("store not answering: %v", err)
	}
	return e
}

func (e *pushEnv) user(name string) chat.ID {
	e.t.Helper()
	u, err := e.st.Signup(e.t.Context(), chat.Account{User: chat.User{Username: name, DisplayName: strings.ToUpper(name)}, PasswordHash: "x"})
	if err != nil {
		e.t.Fatal(err)
	}
	return u.ID
}

// send publishes a message as a gateway does.
func (e *pushEnv) send(conv string, from chat.ID, body string) chat.Message {
	e.t.Helper()
	m := chat.Message{ID: e.gen.Next(), Conversation: conv, Sender: from, Body: body,
		SentAt: time.Now().UTC().Truncate(time.Millisecond), ClientID: fmt.Sprintf("c-%d", e.gen.Next())}
	if _, err := e.js.Publish(e.t.Context(), chat.MsgSubject(conv), m.AppendJSON(nil)); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// subscription is a browser's Web Push subscription: its key pair and auth
// secret, made by the test as a browser makes them.
type subscription struct {
	priv *ecdh.PrivateKey
	auth []byte
}

func (e *pushEnv) webDevice(user chat.ID, name string) (chat.Device, subscription) {
	e.t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	d := chat.Device{User: user, Kind: chat.DeviceWebPush, Token: e.recv.srv.URL + "/wp/" + name,
		P256DH: base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), Auth: base64.RawURLEncoding.EncodeToString(auth)}
	if _, err := e.st.PutDevice(e.t.Context(), d); err != nil {
		e.t.Fatal(err)
	}
	sub := subscription{priv: k, auth: auth}
	e.recv.mu.Lock()
	e.recv.subs[d.Token] = sub
	e.recv.mu.Unlock()
	return d, sub
}

func (e *pushEnv) gatewayDevice(user chat.ID, token string) chat.Device {
	e.t.Helper()
	d := chat.Device{User: user, Kind: chat.DeviceGateway, Token: token, AppID: "org.example.chat"}
	if _, err := e.st.PutDevice(e.t.Context(), d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// delivery is one notification the receiver accepted.
type delivery struct {
	kind     string // gateway or webpush
	device   string // pushkey or endpoint
	msg      string // message ID
	body     string
	muted    bool
	at       time.Time
	vapidKey string
}

// receiver is the real HTTP end of both delivery paths: a Matrix push
// gateway (POST /_matrix/push/v1/notify) and a Web Push service (POST
// /wp/<name>), which decrypts each payload with the subscription's keys.
// While held, requests wait and are then refused with 503: the sender
// never learns whether they arrived, as when it is killed mid-send.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	subs    map[string]subscription
	got     []delivery
	gone    map[string]bool // endpoints answered 410
	failN   int             // answer the next failN requests 500
	holdAt  int             // hold every request once len(got) reaches holdAt (0: never)
	held    int
	release chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, subs: map[string]subscription{}, gone: map[string]bool{}, release: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.unhold()
		r.srv.Close()
	})
	return r
}

func (r *receiver) unhold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holdAt = 0
	select {
	case <-r.release:
	default:
		close(r.release)
	}
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	if r.holdAt > 0 && len(r.got) >= r.holdAt {
		r.held++
		release := r.release
		r.mu.Unlock()
		<-release
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if r.failN > 0 {
		r.failN--
		r.mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	r.mu.Unlock()
	d := delivery{at: time.Now()}
	switch {
	case req.URL.Path == "/_matrix/push/v1/notify":
		var n struct {
			Notification struct {
				EventID string `json:"event_id"`
				Prio    string `json:"prio"`
				Content *struct {
					Body string `json:"body"`
				} `json:"content"`
				Devices []struct {
					Pushkey string `json:"pushkey"`
				} `json:"devices"`
			} `json:"notification"`
		}
		if err := json.Unmarshal(body, &n); err != nil || len(n.Notification.Devices) != 1 {
			r.t.Errorf("push gateway got %s (%v)", body, err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		d.kind, d.device, d.msg = "gateway", n.Notification.Devices[0].Pushkey, n.Notification.EventID
		d.muted = n.Notification.Prio == "low"
		if n.Notification.Content != nil {
			d.body = n.Notification.Content.Body
		}
		defer func() { _, _ = io.WriteString(w, `{"rejected":[]}`) }()
	case strings.HasPrefix(req.URL.Path, "/wp/"):
		endpoint := r.srv.URL + req.URL.Path
		r.mu.Lock()
		sub, ok := r.subs[endpoint]
		gone := r.gone[endpoint]
		r.mu.Unlock()
		if gone || !ok {
			w.WriteHeader(http.StatusGone)
			return
		}
		if req.Header.Get("Content-Encoding") != "aes128gcm" || req.Header.Get("TTL") == "" {
			r.t.Errorf("web push headers %v", req.Header)
		}
		auth := req.Header.Get("Authorization")
		k, _ := strings.CutPrefix(auth[strings.LastIndex(auth, "k="):], "k=")
		pt, err := push.Decrypt(body, sub.priv, sub.auth)
		if err != nil {
			r.t.Errorf("web push payload does not decrypt with the subscription's keys: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var n push.Notification
		if err := json.Unmarshal(pt, &n); err != nil {
			r.t.Errorf("web push payload %q: %v", pt, err)
		}
		d.kind, d.device, d.msg, d.body, d.muted, d.vapidKey = "webpush", endpoint, n.MessageID.String(), n.Body, n.Muted, k
		w.WriteHeader(http.StatusCreated)
	default:
		w.WriteHeader(http.StatusNotFound)
		return
	}
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// startPushProcess runs `chat push` against env's NATS.
func startPushProcess(t *testing.T, bin string, e *pushEnv, vapid string, extra ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"push", "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--nats", e.ns.ClientURL(),
		"--gateway-url", e.recv.srv.URL + "/_matrix/push/v1/notify", "--vapid-private-key", vapid,
		"--backoff-base", "20ms", "--backoff-max", "100ms", "--http-timeout", "2s", "--max-attempts", "3",
		"--log-level", "info"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	running := make(chan struct{})
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "push running") {
				once.Do(func() { close(running) })
			}
			if testing.Verbose() {
				fmt.Fprintln(os.Stderr, "chat push:", sc.Text())
			}
		}
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	select {
	case <-running:
	case <-time.After(30 * time.Second):
		t.Fatal("chat push did not start in 30s")
	}
	return cmd
}

// TestPushKill9 kills chat push with SIGKILL while notifications are in
// flight and restarts it: every message reaches every device of the
// offline member exactly once, Web Push payloads decrypt with the
// subscription's keys, and the delay from sent_at to the receiver is
// reported (p50/p99).
func TestPushKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the chat binary")
	}
	bin := buildChat(t)
	e := newPushEnv(t)
	keys, err := push.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	vapid, _ := keys.EncodeVAPIDPrivate()

	alice, bob := e.user("alice"), e.user("bob")
	conv, _, err := e.st.Direct(t.Context(), alice, bob)
	if err != nil {
		t.Fatal(err)
	}
	e.gatewayDevice(bob, "bob-phone")
	e.webDevice(bob, "bob-browser")
	e.webDevice(alice, "alice-browser") // the sender: never notified

	const n = 30
	const holdAt = 20 // of 2n deliveries: kill with the rest in flight
	e.recv.mu.Lock()
	e.recv.holdAt = holdAt
	e.recv.mu.Unlock()

	first := startPushProcess(t, bin, e, vapid, "--delay", "300ms")
	sent := map[string]chat.Message{}
	for i := range n {
		m := e.send(conv.ID, alice, fmt.Sprintf("hello %d ✓", i))
		sent[m.ID.String()] = m
	}
	// Kill once the held requests show chat push is mid-send and the
	// accepted ones are recorded (the dedup record follows each answer).
	kv, err := e.js.KeyValue(t.Context(), chat.PushSentBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := pollUntil(30*time.Second, 10*time.Millisecond, func() error {
		e.recv.mu.Lock()
		held := e.recv.held
		e.recv.mu.Unlock()
		keys, _ := kv.Keys(t.Context())
		if held == 0 || len(keys) < holdAt {
			return fmt.Errorf("%d held, %d recorded", held, len(keys))
		}
		return nil
	}); err != nil {
		t.Fatalf("never mid-send: %v", err)
	}
	if err := syscall.Kill(-first.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	e.recv.unhold()
	startPushProcess(t, bin, e, vapid, "--delay", "300ms")

	// Wait until the consumer has nothing left, then count.
	cons, err := e.js.Consumer(t.Context(), chat.StreamName, chat.PushDurable)
	if err != nil {
		t.Fatal(err)
	}
	if err := pollUntil(60*time.Second, 50*time.Millisecond, func() error {
		info, err := cons.Info(t.Context())
		if err != nil {
			return err
		}
		if info.NumPending > 0 || info.NumAckPending > 0 {
			return fmt.Errorf("pending %d, ack pending %d", info.NumPending, info.NumAckPending)
		}
		if got := len(e.recv.deliveries()); got < 2*n {
			return fmt.Errorf("%d deliveries of %d", got, 2*n)
		}
		return nil
	}); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	count := map[string]int{}
	var delays []time.Duration
	for _, d := range e.recv.deliveries() {
		m, ok := sent[d.msg]
		switch {
		case !ok:
			t.Errorf("notification of unknown message %s", d.msg)
			continue
		case strings.Contains(d.device, "alice"):
			t.Errorf("the sender was notified: %+v", d)
		case d.body != m.Body || d.muted:
			t.Errorf("%s notification of %s: body %q muted %v, want %q", d.kind, d.msg, d.body, d.muted, m.Body)
		case d.kind == "webpush" && d.vapidKey != keys.Public:
			t.Errorf("VAPID k=%q, want %q", d.vapidKey, keys.Public)
		}
		count[d.kind+" "+d.msg]++
		delays = append(delays, d.at.Sub(m.SentAt))
	}
	for id := range sent {
		for _, k := range []string{"gateway", "webpush"} {
			if c := count[k+" "+id]; c != 1 {
				t.Errorf("message %s reached bob's %s device %d times, want exactly once", id, k, c)
			}
		}
	}
	slices.Sort(delays)
	t.Logf("%d notifications across a kill -9; delay sent_at to receiver (configured delay 300ms, redeliveries after the kill included): p50 %v, p99 %v",
		len(delays), delays[len(delays)/2], delays[len(delays)*99/100])
}
