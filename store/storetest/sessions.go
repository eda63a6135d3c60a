package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
)

// Sessions expire against the wall clock, so their fixtures are made
// relative to now, not to base.

func sessionHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func session(n int, user chat.ID, device string) chat.Session {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return chat.Session{
		ID:          idAt(time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC), n),
		User:        user,
		Device:      device,
		RefreshHash: sessionHash(fmt.Sprintf("token-%d-0", n)),
		CreatedAt:   now.Add(-time.Duration(n) * time.Second),
		LastSeen:    now.Add(-time.Duration(n) * time.Second),
		ExpiresAt:   now.Add(time.Hour),
	}
}

func mkSession(t *testing.T, b store.Backend, s chat.Session) chat.Session {
	t.Helper()
	if err := b.CreateSession(t.Context(), s); err != nil {
		t.Fatalf("CreateSession(%d): %v", s.ID, err)
	}
	return s
}

func diffSession(got, want chat.Session) string {
	var d []string
	if got.ID != want.ID || got.User != want.User || got.Device != want.Device || got.Generation != want.Generation {
		d = append(d, fmt.Sprintf("id/user/device/generation %d/%d/%q/%d, want %d/%d/%q/%d",
			got.ID, got.User, got.Device, got.Generation, want.ID, want.User, want.Device, want.Generation))
	}
	if !bytes.Equal(got.RefreshHash, want.RefreshHash) {
		d = append(d, fmt.Sprintf("refresh hash %x, want %x", got.RefreshHash, want.RefreshHash))
	}
	for _, p := range []struct {
		what      string
		got, want time.Time
	}{{"created at", got.CreatedAt, want.CreatedAt}, {"last seen", got.LastSeen, want.LastSeen}, {"expires at", got.ExpiresAt, want.ExpiresAt}} {
		if !sameTime(p.got, p.want) {
			d = append(d, fmt.Sprintf("%s %v, want %v", p.what, p.got, p.want))
		}
	}
	return strings.Join(d, "; ")
}

func sessionIDs(ss []chat.Session) []chat.ID {
	var ids []chat.ID
	for _, s := range ss {
		ids = append(ids, s.ID)
	}
	return ids
}

func listSessions(t *testing.T, b store.Backend, user chat.ID) []chat.Session {
	t.Helper()
	ss, err := b.Sessions(t.Context(), user)
	if err != nil {
		t.Fatalf("Sessions(%d): %v", user, err)
	}
	return ss
}

func testSessionCreateAndGet(t *testing.T, b store.Backend) {
	ctx := t.Context()
	u := mkUser(t, b, 1, "billy")
	want := mkSession(t, b, session(1, u.ID, "Firefox on Linux ✓"))
	got, err := b.Session(ctx, want.ID)
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if d := diffSession(got, want); d != "" {
		t.Errorf("Session: %s", d)
	}
	// A replay changes nothing.
	replay := want
	replay.Device = "changed"
	if err := b.CreateSession(ctx, replay); err != nil {
		t.Fatalf("replayed CreateSession: %v", err)
	}
	if got, _ := b.Session(ctx, want.ID); got.Device != want.Device {
		t.Errorf("a replayed CreateSession changed the device to %q", got.Device)
	}
	ss := listSessions(t, b, u.ID)
	if len(ss) != 1 || diffSession(ss[0], want) != "" {
		t.Errorf("Sessions = %+v, want [%+v]", ss, want)
	}
	if ss := listSessions(t, b, userID(2)); len(ss) != 0 {
		t.Errorf("Sessions of a user without any = %+v", ss)
	}
}

func testSessionNotFound(t *testing.T, b store.Backend) {
	ctx := t.Context()
	u := mkUser(t, b, 1, "billy")
	if _, err := b.Session(ctx, session(9, u.ID, "").ID); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Session of an unknown ID: err = %v, want ErrNotFound", err)
	}
	expired := session(2, u.ID, "old")
	expired.ExpiresAt = time.Now().UTC().Truncate(time.Millisecond).Add(-time.Minute)
	mkSession(t, b, expired)
	live := mkSession(t, b, session(3, u.ID, "new"))
	if _, err := b.Session(ctx, expired.ID); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Session of an expired session: err = %v, want ErrNotFound", err)
	}
	if err := b.RotateSession(ctx, expired.ID, 0, sessionHash("x"), time.Now()); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("RotateSession of an expired session: err = %v, want ErrNotFound", err)
	}
	if ids := sessionIDs(listSessions(t, b, u.ID)); len(ids) != 1 || ids[0] != live.ID {
		t.Errorf("Sessions = %v, want only the live one %d", ids, live.ID)
	}
}

func testSessionRotate(t *testing.T, b store.Backend) {
	ctx := t.Context()
	u := mkUser(t, b, 1, "billy")
	s := mkSession(t, b, session(1, u.ID, "phone"))
	seen := time.Now().UTC().Truncate(time.Millisecond).Add(time.Second)
	if err := b.RotateSession(ctx, s.ID, 0, sessionHash("token-1-1"), seen); err != nil {
		t.Fatalf("RotateSession 0->1: %v", err)
	}
	want := s
	want.Generation, want.RefreshHash, want.LastSeen = 1, sessionHash("token-1-1"), seen
	got, err := b.Session(ctx, s.ID)
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if d := diffSession(got, want); d != "" {
		t.Errorf("after a rotation: %s", d)
	}
	// From a generation it has left: refused, nothing changes.
	if err := b.RotateSession(ctx, s.ID, 0, sessionHash("evil"), seen.Add(time.Second)); !errors.Is(err, chat.ErrConflict) {
		t.Errorf("RotateSession from a retired generation: err = %v, want ErrConflict", err)
	}
	if err := b.RotateSession(ctx, s.ID, 5, sessionHash("evil"), seen.Add(time.Second)); !errors.Is(err, chat.ErrConflict) {
		t.Errorf("RotateSession from a future generation: err = %v, want ErrConflict", err)
	}
	if got, _ := b.Session(ctx, s.ID); diffSession(got, want) != "" {
		t.Errorf("a refused rotation changed the session: %s", diffSession(got, want))
	}
	if err := b.RotateSession(ctx, session(7, u.ID, "").ID, 0, sessionHash("x"), seen); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("RotateSession of an unknown session: err = %v, want ErrNotFound", err)
	}
	if ss := listSessions(t, b, u.ID); len(ss) != 1 || diffSession(ss[0], want) != "" {
		t.Errorf("Sessions after a rotation = %+v, want [%+v]", ss, want)
	}
}

func testSessionRotateConcurrent(t *testing.T, b store.Backend) {
	ctx := t.Context()
	u := mkUser(t, b, 1, "billy")
	s := mkSession(t, b, session(1, u.ID, "phone"))
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.RotateSession(ctx, s.ID, 0, sessionHash(fmt.Sprint("racer-", i)), time.Now().UTC().Truncate(time.Millisecond))
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("rotations %d and %d from one generation both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, chat.ErrConflict):
			t.Errorf("losing rotation %d: err = %v, want ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no rotation succeeded")
	}
	got, err := b.Session(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 1 || !bytes.Equal(got.RefreshHash, sessionHash(fmt.Sprint("racer-", winner))) {
		t.Errorf("after the race: generation %d hash %x, want 1 and the winner's", got.Generation, got.RefreshHash)
	}
}

func testSessionDelete(t *testing.T, b store.Backend) {
	ctx := t.Context()
	u := mkUser(t, b, 1, "billy")
	other := mkUser(t, b, 2, "anna")
	s1 := mkSession(t, b, session(1, u.ID, "laptop"))
	s2 := mkSession(t, b, session(2, u.ID, "phone"))
	s3 := mkSession(t, b, session(3, other.ID, "anna's"))
	// Someone else's ID: nothing happens.
	if err := b.DeleteSession(ctx, other.ID, s1.ID); err != nil {
		t.Fatalf("DeleteSession by another user: %v", err)
	}
	if _, err := b.Session(ctx, s1.ID); err != nil {
		t.Errorf("another user deleted billy's session: %v", err)
	}
	if err := b.DeleteSession(ctx, u.ID, s1.ID); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	if _, err := b.Session(ctx, s1.ID); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Session after DeleteSession: err = %v, want ErrNotFound", err)
	}
	if err := b.RotateSession(ctx, s1.ID, 0, sessionHash("x"), time.Now()); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("RotateSession after DeleteSession: err = %v, want ErrNotFound", err)
	}
	if err := b.DeleteSession(ctx, u.ID, s1.ID); err != nil {
		t.Errorf("DeleteSession twice: %v", err)
	}
	if ids := sessionIDs(listSessions(t, b, u.ID)); len(ids) != 1 || ids[0] != s2.ID {
		t.Errorf("Sessions(billy) = %v, want [%d]", ids, s2.ID)
	}
	if ids := sessionIDs(listSessions(t, b, other.ID)); len(ids) != 1 || ids[0] != s3.ID {
		t.Errorf("Sessions(anna) = %v, want [%d]", ids, s3.ID)
	}
}

func testSessionsList(t *testing.T, b store.Backend) {
	u := mkUser(t, b, 1, "billy")
	// Created out of ID order; listed by ID.
	for _, n := range []int{5, 2, 9, 1, 7} {
		mkSession(t, b, session(n, u.ID, fmt.Sprint("device ", n)))
	}
	got := sessionIDs(listSessions(t, b, u.ID))
	sorted := []chat.ID{session(1, 0, "").ID, session(2, 0, "").ID, session(5, 0, "").ID, session(7, 0, "").ID, session(9, 0, "").ID}
	if fmt.Sprint(got) != fmt.Sprint(sorted) {
		t.Errorf("Sessions = %v, want %v (by ID)", got, sorted)
	}
}

func testSetPasswordHash(t *testing.T, b store.Backend) {
	ctx := t.Context()
	mkUser(t, b, 1, "billy")
	mkUser(t, b, 2, "anna")
	if err := b.SetPasswordHash(ctx, "billy", "$argon2id$new"); err != nil {
		t.Fatalf("SetPasswordHash: %v", err)
	}
	want := account(1, "billy")
	want.PasswordHash = "$argon2id$new"
	got, err := b.AccountByUsername(ctx, "billy")
	if err != nil {
		t.Fatal(err)
	}
	if d := diffAccount(got, want); d != "" {
		t.Errorf("after SetPasswordHash: %s", d)
	}
	if got, _ := b.AccountByUsername(ctx, "anna"); diffAccount(got, account(2, "anna")) != "" {
		t.Errorf("SetPasswordHash changed another account: %s", diffAccount(got, account(2, "anna")))
	}
	if err := b.SetPasswordHash(ctx, "nobody", "$argon2id$x"); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("SetPasswordHash of an unknown user: err = %v, want ErrNotFound", err)
	}
	if _, err := b.AccountByUsername(ctx, "nobody"); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("SetPasswordHash of an unknown user created it: %v", err)
	}
}
