package store_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/router"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/storeclient"
)

// idNode is the node number inside an ID (chat.Generator's layout: 12 bits
// of sequence below 10 of node).
func idNode(id chat.ID) int { return int(uint64(id)>>12) & chat.MaxNode }

// A store whose node-ID lease is taken over stops making IDs (it would make
// the other holder's) until it holds a new node ID, and then makes them with
// the new one.
func TestProcessStopsIDsWhileLeaseLost(t *testing.T) {
	e := newEnv(t)
	nc, js := connect(t, e.ns)
	cfg := fastConfig()
	p, err := store.Start(t.Context(), store.Options{
		NATS: nc, JetStream: js, Backend: openBolt(t), Config: cfg,
		Lease:      router.LeaseConfig{TTL: 10 * time.Second}, // renewed, and a takeover noticed, every 3.3s
		LeaseCheck: 10 * time.Millisecond,
		Registry:   prometheus.NewRegistry(), Log: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		if err := p.Shutdown(context.Background()); err != nil { // twice
			t.Error(err)
		}
	})
	waitReady(t, p.Service())
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	held := p.Node()
	u, err := c.Signup(t.Context(), chat.Account{User: chat.User{Username: "first"}, PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if idNode(u.ID) != held {
		t.Fatalf("user %s made with node %d, lease holds %d", u.ID, idNode(u.ID), held)
	}

	// Another process takes every node ID, this one's last: there is none
	// left to lease again.
	kv, err := e.js.KeyValue(t.Context(), chat.NodeIDBucket)
	if err != nil {
		t.Fatal(err)
	}
	for n := range chat.MaxNode + 1 {
		if n == held {
			continue
		}
		if _, err := kv.Create(t.Context(), "node."+strconv.Itoa(n), []byte("thief")); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			t.Fatal(err)
		}
	}
	if _, err := kv.Put(t.Context(), "node."+strconv.Itoa(held), []byte("thief")); err != nil {
		t.Fatal(err)
	}
	tries := 0
	waitFor(t, 5*time.Second, func() error {
		tries++ // a name of its own each time: until the takeover is noticed, signing up works
		_, err := c.Signup(t.Context(), chat.Account{User: chat.User{Username: fmt.Sprint("during", tries)}, PasswordHash: "h"})
		if !errors.Is(err, chat.ErrUnavailable) {
			return fmt.Errorf("signup while the lease is lost: %v", err)
		}
		return nil
	})
	if _, err := c.Group(t.Context(), "g", u.ID, nil); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("group while the lease is lost: %v", err)
	}
	if p.Ready() || p.Node() != -1 {
		t.Fatalf("ready %v, node %d while the lease is lost", p.Ready(), p.Node())
	}
	// Reads go on.
	if _, err := c.Users(t.Context(), []chat.ID{u.ID}); err != nil {
		t.Fatal(err)
	}

	// One node ID comes free: the store leases it and makes IDs again.
	free := (held + 1) % (chat.MaxNode + 1)
	if err := kv.Delete(t.Context(), "node."+strconv.Itoa(free)); err != nil {
		t.Fatal(err)
	}
	waitReady(t, p.Service())
	if p.Node() == held || p.Node() < 0 {
		t.Fatalf("node %d after the takeover of %d", p.Node(), held)
	}
	u2, err := c.Signup(t.Context(), chat.Account{User: chat.User{Username: "after"}, PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if idNode(u2.ID) != p.Node() {
		t.Fatalf("user %s made with node %d, lease holds %d", u2.ID, idNode(u2.ID), p.Node())
	}
	// The taken-over key is the thief's still: losing a lease deletes
	// nothing of the new holder's.
	if v, err := kv.Get(t.Context(), "node."+strconv.Itoa(held)); err != nil || string(v.Value()) != "thief" {
		t.Fatalf("taken-over key: %v %v", v, err)
	}
}

func TestStartRejects(t *testing.T) {
	e := newEnv(t)
	if _, err := store.Start(t.Context(), store.Options{Backend: openBolt(t)}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("without NATS: %v", err)
	}
	if _, err := store.Start(t.Context(), store.Options{NATS: e.nc}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("without a backend: %v", err)
	}
	// A bad config releases the lease it took.
	_, err := store.Start(t.Context(), store.Options{NATS: e.nc, Backend: openBolt(t),
		Config: store.ServiceConfig{FilterSubject: "chat.msg.>"}})
	if !errors.Is(err, chat.ErrInvalid) {
		t.Fatalf("bad filter: %v", err)
	}
	kv, err := e.js.KeyValue(t.Context(), chat.NodeIDBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		t.Errorf("lease %s left behind", k)
	}
}
