package store_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/password"
	"github.com/chatcluster/chat/store/storeclient"
)

// The store checks passwords: a login and a password change carry the
// password to it, and no message it sends, reply or event, carries a hash.
func TestPasswordHashNeverLeavesStore(t *testing.T) {
	e := newEnv(t)
	s := startService(t, e, openBolt(t), store.ServiceConfig{})
	waitReady(t, s.svc)
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	ctx := t.Context()

	// Everything on the bus, replies (inboxes) included, from here on.
	var mu sync.Mutex
	var seen []*nats.Msg
	sub, err := e.nc.Subscribe(">", func(m *nats.Msg) {
		mu.Lock()
		seen = append(seen, m)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe() //nolint:errcheck // test end
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	hash, err := password.Hash("first password")
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.Signup(ctx, chat.Account{User: chat.User{Username: "Hasher"}, PasswordHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Login(ctx, "HASHER", "first password")
	if err != nil || got.ID != u.ID || got.Username != "hasher" {
		t.Fatalf("login: %+v %v", got, err)
	}
	for _, bad := range []struct{ name, pw string }{
		{"hasher", "wrong password"},
		{"nobody", "first password"},
		{"no", "first password"}, // not a username
		{"hasher", "short"},      // not a password
	} {
		if _, err := c.Login(ctx, bad.name, bad.pw); !errors.Is(err, chat.ErrWrongPassword) {
			t.Errorf("login %q/%q: %v, want chat.ErrWrongPassword", bad.name, bad.pw, err)
		}
	}
	if a, err := c.Account(ctx, "hasher"); err != nil || a.ID != u.ID || a.PasswordHash != "" {
		t.Errorf("account: %+v %v, want the account without its hash", a, err)
	}

	// A password change needs the current password, checked by the store.
	hash2, err := password.Hash("second password")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetPassword(ctx, storeclient.PasswordRequest{User: u.ID, Username: "hasher", Current: "wrong password", Hash: hash2}); !errors.Is(err, chat.ErrWrongPassword) {
		t.Fatalf("password change with the wrong current password: %v, want chat.ErrWrongPassword", err)
	}
	if _, err := c.Login(ctx, "hasher", "first password"); err != nil {
		t.Fatalf("a refused change changed the password: %v", err)
	}
	if _, err := c.SetPassword(ctx, storeclient.PasswordRequest{User: u.ID, Username: "hasher", Current: "first password", Hash: hash2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(ctx, "hasher", "second password"); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	if _, err := c.Login(ctx, "hasher", "first password"); !errors.Is(err, chat.ErrWrongPassword) {
		t.Fatalf("login with the old password: %v", err)
	}

	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	replies := 0
	for _, m := range seen {
		if bytes.HasPrefix([]byte(m.Subject), []byte(chat.StoreSubjectPrefix)) {
			continue // requests: the gateway's signup and change carry a new hash to the store
		}
		replies++
		for _, h := range []string{hash, hash2} {
			// The key part: the PHC string's last field.
			if key := h[bytes.LastIndexByte([]byte(h), '$')+1:]; bytes.Contains(m.Data, []byte(key)) {
				t.Errorf("%s carries a password hash: %s", m.Subject, m.Data)
			}
		}
		if bytes.Contains(m.Data, []byte("$argon2id$")) {
			t.Errorf("%s carries an argon2 hash: %s", m.Subject, m.Data)
		}
	}
	if replies < 10 {
		t.Fatalf("saw %d replies, want every one of the calls above", replies)
	}
}
