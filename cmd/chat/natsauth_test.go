package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/gateway"
	"github.com/chatcluster/chat/router"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/bolt"
	"github.com/chatcluster/chat/store/push"
	"github.com/chatcluster/chat/web"
)

// natsAuthServer starts an embedded nats-server (JetStream) with the users
// and permissions of k8s/base/nats-auth.conf, the file the cluster's NATS
// includes, and their passwords in the environment as the pods have them.
func natsAuthServer(t *testing.T) (*server.Server, map[string]string) {
	t.Helper()
	auth, err := os.ReadFile("../../k8s/base/nats-auth.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nats-auth.conf"), auth, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("include ./nats-auth.conf\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw := map[string]string{"gateway": "gateway-secret-1", "store": "store-secret-2", "push": "push-secret-3"}
	for role, p := range pw {
		t.Setenv("NATS_"+strings.ToUpper(role)+"_PASSWORD", p)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.JetStream, opts.StoreDir = true, filepath.Join(dir, "js")
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	return ns, pw
}

// roleConn connects as role the way chat gateway, store and push do
// (connectNATS with --nats-user and --nats-password).
func roleConn(t *testing.T, ctx context.Context, url, role, password string, log *zap.Logger) *nats.Conn {
	t.Helper()
	fs := flag.NewFlagSet(role, flag.ContinueOnError)
	f := addNATSFlags(fs)
	if err := parseFlags(fs, []string{"--nats", url, "--nats-user", role, "--nats-password", password}); err != nil {
		t.Fatal(err)
	}
	nc, err := connectNATS(f, role, log.Named(role))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := waitConnected(ctx, nc); err != nil {
		t.Fatal(err)
	}
	return nc
}

// The whole system runs under the per-role users: sign-up, log-in,
// conversations, messages over WebSockets with their acks, history,
// presence, log-out; and no connection of any role hits a permission
// violation on the way.
func TestNATSPermissionsRunTheSystem(t *testing.T) {
	ns, pw := natsAuthServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	core, logs := observer.New(zapcore.WarnLevel)
	log := zap.New(core)

	ncStore := roleConn(t, ctx, ns.ClientURL(), "store", pw["store"], log)
	ncPush := roleConn(t, ctx, ns.ClientURL(), "push", pw["push"], log)
	ncGw := roleConn(t, ctx, ns.ClientURL(), "gateway", pw["gateway"], log)

	backend, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	st, err := store.Start(ctx, store.Options{
		NATS: ncStore, Backend: backend, Registry: newRegistry(), Log: log.Named("store"),
		Stream: &router.StreamConfig{Replicas: 1}, Lease: router.LeaseConfig{Replicas: 1},
		Config: store.ServiceConfig{Stream: chat.StreamName, Durable: chat.StoreDurable, AckWait: storeAckWait},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Shutdown(context.Background()) //nolint:errcheck // test end
	p, err := startPush(ctx, ncPush, newRegistry(), push.Config{Log: log.Named("push")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close(context.Background()) //nolint:errcheck // test end
	gw, err := gateway.Start(ctx, gateway.Options{
		Config: gateway.Config{JWTSecret: []byte("nats-permissions-secret-0123456789"), Drain: time.Second, Web: web.Handler()},
		NATS:   ncGw, Registry: newRegistry(), Log: log.Named("gateway"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := gw.Serve(ln); err != nil && !errors.Is(err, gateway.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	defer func() {
		_ = gw.Shutdown(context.Background())
		wg.Wait()
	}()
	if err := pollUntil(30*time.Second, 50*time.Millisecond, func() error {
		if !st.Ready() {
			return errors.New("store not ready")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	base := "http://" + ln.Addr().String() + "/"
	promTraffic(t, hc, base)

	// Sessions: a ticket (the tickets bucket), a socket opened with it,
	// typing (a conversation event), a refresh, a password change (the
	// store checks it and ends the other session: a revocation), log out.
	var a, other struct {
		Token        string `json:"token"`
		RefreshToken string `json:"refresh_token"`
	}
	if code := promHTTP(ctx, t, hc, "POST", base+"api/v1/signup", "", map[string]string{"username": "permuser", "password": "first password"}, &a); code != http.StatusCreated {
		t.Fatalf("signup: %d", code)
	}
	if code := promHTTP(ctx, t, hc, "POST", base+"api/v1/login", "", map[string]string{"username": "permuser", "password": "first password"}, &other); code != http.StatusOK {
		t.Fatalf("login: %d", code)
	}
	var conv struct{ ID string }
	if code := promHTTP(ctx, t, hc, "POST", base+"api/v1/conversations", a.Token, map[string]any{"title": "perms", "members": []string{}}, &conv); code != http.StatusCreated {
		t.Fatalf("group: %d", code)
	}
	var ticket struct{ Ticket string }
	if code := promHTTP(ctx, t, hc, "POST", base+"api/v1/ws-ticket", a.Token, nil, &ticket); code != http.StatusOK || ticket.Ticket == "" {
		t.Fatalf("ticket: %d", code)
	}
	ws, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/ws?ticket="+url.QueryEscape(ticket.Ticket), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow() //nolint:errcheck // test end
	promRead(ctx, t, ws, func(f promFrame) bool { return f.Type == "hello" })
	promWrite(ctx, t, ws, map[string]any{"type": "typing", "conversation": conv.ID})
	promWrite(ctx, t, ws, map[string]any{"type": "send", "id": "s1", "conversation": conv.ID, "client_id": "perm-1", "body": "hi"})
	promRead(ctx, t, ws, func(f promFrame) bool { return f.ID == "s1" })
	if code := promHTTP(ctx, t, hc, "POST", base+"api/v1/token", "", map[string]string{"refresh_token": a.RefreshToken}, &a); code != http.StatusOK {
		t.Fatalf("refresh: %d", code)
	}
	if code := promHTTP(ctx, t, hc, "POST", base+"api/v1/password", a.Token, map[string]string{"current_password": "first password", "new_password": "second password"}, nil); code != http.StatusNoContent {
		t.Fatalf("password change: %d", code)
	}
	if err := pollUntil(10*time.Second, 50*time.Millisecond, func() error {
		if code := promHTTP(ctx, t, hc, "GET", base+"api/v1/me", other.Token, nil, nil); code != http.StatusUnauthorized {
			return fmt.Errorf("the other session after a password change: %d", code)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if code := promHTTP(ctx, t, hc, "POST", base+"api/v1/logout", a.Token, nil, nil); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}

	if err := ncGw.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, e := range logs.All() {
		if text := strings.ToLower(e.Message + " " + fmt.Sprint(e.ContextMap())); strings.Contains(text, "permission") || strings.Contains(text, "authoriz") {
			t.Errorf("%s: %s %v", e.LoggerName, e.Message, e.ContextMap())
		}
	}
}

// rawRole is a plain connection as role with the role's inbox prefix,
// whose asynchronous errors (permission violations) arrive on errs.
func rawRole(t *testing.T, url, role, password string) (*nats.Conn, chan error) {
	t.Helper()
	errs := make(chan error, 16)
	nc, err := nats.Connect(url, nats.UserInfo(role, password), nats.CustomInboxPrefix(inboxPrefix(role)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// refused runs do on a connection of role and waits for the server's
// permission violation.
func refused(t *testing.T, url, role, password, what string, do func(nc *nats.Conn) error) {
	t.Helper()
	nc, errs := rawRole(t, url, role, password)
	if err := do(nc); err != nil {
		if errors.Is(err, nats.ErrPermissionViolation) {
			return
		}
		t.Fatalf("%s %s: %v", role, what, err)
	}
	_ = nc.Flush()
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("%s %s: %v, want a permission violation", role, what, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s may %s", role, what)
	}
}

// What each role must not do: answer or overhear store requests, read
// another role's replies, publish what only another role publishes, delete
// the stream or ack the store's messages. And no connection without a
// user.
func TestNATSPermissionsRefuse(t *testing.T) {
	ns, pw := natsAuthServer(t)
	url := ns.ClientURL()
	sub := func(subj string) func(*nats.Conn) error {
		return func(nc *nats.Conn) error { _, err := nc.SubscribeSync(subj); return err }
	}
	pub := func(subj string) func(*nats.Conn) error {
		return func(nc *nats.Conn) error { return nc.Publish(subj, []byte("x")) }
	}
	for _, c := range []struct {
		role, what string
		do         func(*nats.Conn) error
	}{
		{"gateway", "subscribe to store requests", sub(chat.StoreSubjectPrefix + ">")},
		{"gateway", "answer account requests", sub(chat.StoreSubject("account"))},
		{"push", "subscribe to store requests", sub(chat.StoreSubjectPrefix + "login")},
		{"gateway", "read push's replies", sub(inboxPrefix("push") + ".>")},
		{"gateway", "read the store's replies", sub(inboxPrefix("store") + ".>")},
		{"push", "read the gateways' replies (account answers)", sub(inboxPrefix("gateway") + ".>")},
		{"gateway", "read every inbox", sub("_INBOX.>")},
		{"gateway", "subscribe to everything", sub(">")},
		{"push", "publish messages", pub(chat.MsgSubject("c1"))},
		{"store", "publish messages", pub(chat.MsgSubject("c1"))},
		{"gateway", "publish user events", pub(chat.UserSubject(1))},
		{"gateway", "delete the message stream", pub("$JS.API.STREAM.DELETE." + chat.StreamName)},
		{"gateway", "take the store's messages", pub("$JS.API.CONSUMER.MSG.NEXT." + chat.StreamName + "." + chat.StoreDurable)},
		{"gateway", "ack the store's messages", pub("$JS.ACK." + chat.StreamName + "." + chat.StoreDurable + ".1.1.1.1.1")},
		{"push", "ack the store's messages", pub("$JS.ACK." + chat.StreamName + "." + chat.StoreDurable + ".1.1.1.1.1")},
		{"push", "end sessions", pub(chat.SessionRevokedSubject)},
	} {
		t.Run(c.role+" "+c.what, func(t *testing.T) {
			refused(t, url, c.role, pw[c.role], c.what, c.do)
		})
	}
	for _, opt := range []nats.Option{nats.Name("no user"), nats.UserInfo("gateway", "wrong"), nats.UserInfo("admin", pw["store"])} {
		if nc, err := nats.Connect(url, opt); err == nil {
			nc.Close()
			t.Error("a connection without a valid user was accepted")
		}
	}
	// The store alone answers: a gateway's request gets the store's reply.
	st, _ := rawRole(t, url, "store", pw["store"])
	if _, err := st.Subscribe(chat.StoreSubject("ping"), func(m *nats.Msg) { _ = m.Respond([]byte("pong")) }); err != nil {
		t.Fatal(err)
	}
	_ = st.Flush()
	gw, _ := rawRole(t, url, "gateway", pw["gateway"])
	if m, err := gw.Request(chat.StoreSubject("ping"), nil, 10*time.Second); err != nil || string(m.Data) != "pong" {
		t.Fatalf("gateway -> store request: %v", err)
	}
}

// --nats-user and --nats-password go together; --nats-creds excludes them.
func TestNATSCredentialFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		bad  bool
	}{
		{args: nil},
		{args: []string{"--nats-user", "gateway", "--nats-password", "pw"}},
		{args: []string{"--nats-user", "gateway"}, env: map[string]string{"CHAT_NATS_PASSWORD": "pw"}},
		{args: []string{"--nats-creds", "/run/secrets/nats.creds"}},
		{args: []string{"--nats-user", "gateway"}, bad: true},
		{args: []string{"--nats-password", "pw"}, bad: true},
		{args: []string{"--nats-creds", "x.creds", "--nats-user", "gateway", "--nats-password", "pw"}, bad: true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f := addNATSFlags(fs)
			if err := parseFlags(fs, tc.args); err != nil {
				t.Fatal(err)
			}
			if _, err := f.options(); (err != nil) != tc.bad {
				t.Errorf("%v %v: %v, bad=%v", tc.args, tc.env, err, tc.bad)
			} else if tc.bad && !errors.Is(err, errNATSAuthFlags) {
				t.Errorf("%v: %v, want errNATSAuthFlags", tc.args, err)
			}
		})
	}
}
