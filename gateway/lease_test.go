package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/router"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/bolt"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// newLeaseEnv is newEnv with a short node-ID lease, so that a takeover is
// noticed within a second, and the JetStream context to take it over with.
func newLeaseEnv(t *testing.T) (*env, jetstream.JetStream) {
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
	backend, err := bolt.Open(t.TempDir()+"/store.db", bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := Start(t.Context(), Options{
		Config: Config{JWTSecret: []byte("test-secret-0123456789abcdef")}, NATS: nc,
		// Renewed, and a takeover noticed, every 3 s; the thief's keys (it
		// never renews them) outlive the test's steps.
		Lease: router.LeaseConfig{TTL: 9 * time.Second, Check: 10 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := store.NewService(store.ServiceConfig{}, backend, nc, js, chat.MaxNode, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	svcDone := make(chan struct{})
	go func() {
		defer close(svcDone)
		_ = svc.Run(context.Background())
	}()
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
		<-serveDone
		_ = svc.Shutdown(context.Background())
		<-svcDone
		_ = backend.Close()
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return &env{gw: gw, addr: ln.Addr().String(), nc: nc}, js
}

// sendOnce sends one message and returns the stored message, or the error
// code of the answer.
func sendOnce(t *testing.T, c *rawClient, conv, clientID string) (chat.Message, string) {
	t.Helper()
	c.write(t, fmt.Sprintf(`{"type":"send","id":%q,"conversation":%q,"client_id":%q,"body":"hi"}`, clientID, conv, clientID))
	for {
		b := c.read(t)
		var f struct {
			Type    string          `json:"type"`
			ID      string          `json:"id"`
			Code    string          `json:"code"`
			Message json.RawMessage `json:"message"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		if f.ID != clientID {
			continue // the fan-out of an earlier message, presence, ...
		}
		switch f.Type {
		case "ack":
			var m chat.Message
			if err := json.Unmarshal(f.Message, &m); err != nil {
				t.Fatal(err)
			}
			return m, ""
		case "error":
			return chat.Message{}, f.Code
		}
	}
}

// A gateway whose node-ID lease is taken over refuses sends (unavailable:
// the client retries with the same client_id) and is not ready until it
// holds another node ID; then sends go through with IDs of the new node.
func TestGatewayRefusesSendsWhileLeaseLost(t *testing.T) {
	e, js := newLeaseEnv(t)
	tokA, idA := e.signup(t, "leasea")
	_, idB := e.signup(t, "leaseb")
	a, _ := strconv.ParseUint(idA, 10, 64)
	b, _ := strconv.ParseUint(idB, 10, 64)
	conv := chat.DirectID(chat.ID(a), chat.ID(b))
	req, _ := http.NewRequest("POST", "http://"+e.addr+"/api/v1/conversations/direct", strings.NewReader(`{"username":"leaseb"}`))
	req.Header.Set("Authorization", "Bearer "+tokA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("direct conversation: %s", resp.Status)
	}
	c := dialRaw(t, e.addr, tokA)
	defer c.conn.Close()
	if typeOf(c.read(t)) != "hello" {
		t.Fatal("no hello")
	}

	held := e.gw.Node()
	m, code := sendOnce(t, c, conv, "before")
	if code != "" || m.ID.Node() != held {
		t.Fatalf("send before the takeover: %q, id %s of node %d (lease %d)", code, m.ID, m.ID.Node(), held)
	}

	// Another process takes this node ID, and every other one.
	kv, err := js.KeyValue(t.Context(), chat.NodeIDBucket)
	if err != nil {
		t.Fatal(err)
	}
	for n := range chat.MaxNode + 1 {
		if n != held {
			if _, err := kv.Create(t.Context(), "node."+strconv.Itoa(n), []byte("thief")); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
				t.Fatal(err)
			}
		}
	}
	if _, err := kv.Put(t.Context(), "node."+strconv.Itoa(held), []byte("thief")); err != nil {
		t.Fatal(err)
	}
	tries := 0
	eventually(t, 10*time.Second, func() error {
		tries++ // a client_id of its own each time: until noticed, sends go through
		if _, code := sendOnce(t, c, conv, fmt.Sprint("during", tries)); code != codeUnavailable {
			return fmt.Errorf("send while the lease is lost: %q", code)
		}
		return nil
	})
	if e.gw.Ready() || e.gw.Node() != -1 {
		t.Fatalf("ready %v, node %d while the lease is lost", e.gw.Ready(), e.gw.Node())
	}

	// A node ID comes free: the gateway leases it and sends go through.
	free := (held + 1) % (chat.MaxNode + 1)
	if err := kv.Delete(t.Context(), "node."+strconv.Itoa(free)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if !e.gw.Ready() {
			return errors.New("not ready after a node ID came free")
		}
		return nil
	})
	m, code = sendOnce(t, c, conv, "after")
	if code != "" || m.ID.Node() != e.gw.Node() || e.gw.Node() == held {
		t.Fatalf("send after: %q, id %s of node %d (lease %d, was %d)", code, m.ID, m.ID.Node(), e.gw.Node(), held)
	}
}
