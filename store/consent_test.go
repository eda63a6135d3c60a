package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/storeclient"
)

// Issue 14 part 4: groups created and members added per user per hour,
// and groups per user, enforced by the store for every replica at once (two
// replicas here share the counters); a refused request changes nothing.
func TestGroupLimits(t *testing.T) {
	e := newEnv(t)
	b := openBolt(t)
	cfg := store.ServiceConfig{GroupsPerHour: 3, MembersPerHour: 6, MaxGroupsPerUser: 3}
	s1 := startService(t, e, b, cfg)
	s2 := startService(t, e, b, cfg)
	waitReady(t, s1.svc)
	waitReady(t, s2.svc)
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	ctx := t.Context()
	var us []chat.User
	for i := range 10 {
		us = append(us, signup(t, c, fmt.Sprintf("lim%d", i)))
	}
	boss, spam := us[0], us[1]

	// Groups per hour: three, then refused, whichever replica answers.
	for i := range 3 {
		if _, err := c.Group(ctx, fmt.Sprintf("g%d", i), spam.ID, nil); err != nil {
			t.Fatalf("group %d: %v", i, err)
		}
	}
	for range 4 {
		if _, err := c.Group(ctx, "one too many", spam.ID, nil); !errors.Is(err, chat.ErrLimited) {
			t.Fatalf("fourth group in an hour: %v, want chat.ErrLimited", err)
		}
	}
	if list, err := c.Conversations(ctx, spam.ID, 100); err != nil || len(list) != 3 {
		t.Fatalf("spam's groups: %d %v, want 3", len(list), err)
	}

	// Members added per hour: 6, a new group's included.
	g, err := c.Group(ctx, "team", boss.ID, []chat.ID{us[2].ID, us[3].ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.AddMembers(ctx, g.ID, boss.ID, []chat.ID{us[4].ID, us[5].ID, us[6].ID}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.AddMembers(ctx, g.ID, boss.ID, []chat.ID{us[7].ID, us[8].ID}); !errors.Is(err, chat.ErrLimited) {
		t.Fatalf("members past the hour's bound: %v, want chat.ErrLimited", err)
	}
	if cv, err := c.Conversation(ctx, g.ID); err != nil || len(cv.Members) != 6 {
		t.Fatalf("a refused add changed the group: %d members, %v", len(cv.Members), err)
	}
	// Another user's bound is their own.
	if _, _, err := c.AddMembers(ctx, g.ID, us[2].ID, []chat.ID{us[7].ID}); err != nil {
		t.Fatalf("another member adds: %v", err)
	}

	// Groups per user (a group one creates counts): us[9] may be in three;
	// a fourth add fails for the adder, and us[9] is unaffected and may
	// leave and be added again.
	full := us[9]
	var gs []chat.Conversation
	for i, by := range []chat.User{us[3], us[4], us[5], us[6]} {
		cv, err := c.Group(ctx, fmt.Sprintf("cap %d", i), by.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, cv)
	}
	for i := range 3 {
		if _, _, err := c.AddMembers(ctx, gs[i].ID, us[3+i].ID, []chat.ID{full.ID}); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	if _, _, err := c.AddMembers(ctx, gs[3].ID, us[6].ID, []chat.ID{full.ID}); !errors.Is(err, chat.ErrTooMany) {
		t.Fatalf("adding a user at the bound: %v, want chat.ErrTooMany", err)
	}
	for range 3 {
		if _, err := c.Group(ctx, "new", us[7].ID, []chat.ID{full.ID}); !errors.Is(err, chat.ErrTooMany) {
			t.Fatalf("a group with a user at the bound: %v, want chat.ErrTooMany", err)
		}
	}
	// Refused requests used up nothing of the adder's hour: three refused
	// creations, and us[7] still creates one.
	if _, err := c.Group(ctx, "after refusals", us[7].ID, nil); err != nil {
		t.Fatalf("a group after refused ones: %v", err)
	}
	if list, err := c.Conversations(ctx, full.ID, 100); err != nil || len(list) != 3 {
		t.Fatalf("the full user's list: %d %v, want 3", len(list), err)
	}
	if err := c.Leave(ctx, gs[0].ID, full.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.AddMembers(ctx, gs[3].ID, us[6].ID, []chat.ID{full.ID}); err != nil {
		t.Fatalf("adding after a leave: %v", err)
	}

	// Concurrent adds never pass the bound.
	var wg sync.WaitGroup
	target := us[8]
	for i, by := range []chat.User{us[2], us[3], us[4], us[5]} {
		cv, err := c.Group(ctx, fmt.Sprintf("race %d", i), by.ID, nil)
		if err != nil && !errors.Is(err, chat.ErrLimited) {
			t.Fatal(err)
		}
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = c.AddMembers(ctx, cv.ID, by.ID, []chat.ID{target.ID})
		}()
	}
	wg.Wait()
	if list, err := c.Conversations(ctx, target.ID, 100); err != nil || len(list) > 3 {
		t.Fatalf("concurrent adds: the user is in %d groups, bound 3 (%v)", len(list), err)
	}
}

// Consent through the store client: a refused add changes nothing.
func TestConsentStore(t *testing.T) {
	e := newEnv(t)
	s := startService(t, e, openBolt(t), store.ServiceConfig{})
	waitReady(t, s.svc)
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	ctx := t.Context()
	a, b := signup(t, c, "cona"), signup(t, c, "conb")
	if err := c.SetAddPolicy(ctx, b.ID, "sometimes"); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("bad policy: %v", err)
	}
	if p, err := c.AddPolicy(ctx, b.ID); err != nil || p != storeclient.AddAnyone {
		t.Errorf("policy %q %v, want the default anyone", p, err)
	}
	if err := c.SetAddPolicy(ctx, b.ID, storeclient.AddNobody); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Group(ctx, "x", a.ID, []chat.ID{b.ID}); !errors.Is(err, chat.ErrNotAllowed) {
		t.Errorf("group with a user who accepts nobody: %v", err)
	}
	if list, _ := c.Conversations(ctx, b.ID, 10); len(list) != 0 {
		t.Errorf("b is in %d conversations", len(list))
	}
	if err := c.Block(ctx, b.ID, b.ID, true); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("block oneself: %v", err)
	}
	if err := c.Block(ctx, b.ID, 12345, true); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("block an unknown user: %v", err)
	}
	if err := c.Block(ctx, b.ID, a.ID, true); err != nil {
		t.Fatal(err)
	}
	if ids, err := c.Blocks(ctx, b.ID); err != nil || len(ids) != 1 || ids[0] != a.ID {
		t.Errorf("blocks %v %v", ids, err)
	}
	for _, pair := range [][2]chat.ID{{a.ID, b.ID}, {b.ID, a.ID}} {
		if either, err := c.BlockedEither(ctx, pair[0], pair[1]); err != nil || !either {
			t.Errorf("BlockedEither%v = %v %v", pair, either, err)
		}
	}
	if err := c.Block(ctx, b.ID, a.ID, false); err != nil {
		t.Fatal(err)
	}
	if either, err := c.BlockedEither(ctx, a.ID, b.ID); err != nil || either {
		t.Errorf("after unblock: %v %v", either, err)
	}
}

// Names stored before the display-name and reserved-username rules are
// served as they are: nobody is locked out (issue 14 part 5).
func TestOldNamesStillServed(t *testing.T) {
	e := newEnv(t)
	b := openBolt(t)
	old := chat.Account{User: chat.User{ID: 4242, Username: "app.js", DisplayName: "evil\u202Eabc\x00"}, PasswordHash: "hash"}
	if _, err := b.CreateAccount(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	s := startService(t, e, b, store.ServiceConfig{})
	waitReady(t, s.svc)
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	a, err := c.Account(t.Context(), "app.js")
	if err != nil || a.ID != old.ID || a.DisplayName != old.DisplayName {
		t.Fatalf("account: %+v %v", a, err)
	}
	us, err := c.Users(t.Context(), []chat.ID{old.ID})
	if err != nil || len(us) != 1 || us[0].DisplayName != old.DisplayName {
		t.Fatalf("users: %+v %v", us, err)
	}
	other := signup(t, c, "newcomer")
	if _, _, err := c.Direct(t.Context(), other.ID, old.ID); err != nil {
		t.Fatalf("a direct conversation with an old account: %v", err)
	}
}
