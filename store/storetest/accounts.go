package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
)

func testCreateAccountAndLookup(t *testing.T, b store.Backend) {
	ctx := t.Context()
	want := account(1, "billy")
	want.DisplayName = "Billy 🦊 Ünïcode"
	if got, err := b.CreateAccount(ctx, want); err != nil || diffAccount(got, want) != "" {
		t.Fatalf("CreateAccount = %+v, %v; want %+v", got, err, want)
	}
	other := account(2, "anna")
	if _, err := b.CreateAccount(ctx, other); err != nil {
		t.Fatalf("CreateAccount(anna): %v", err)
	}
	for _, w := range []chat.Account{want, other} {
		got, err := b.AccountByUsername(ctx, w.Username)
		if err != nil {
			t.Fatalf("AccountByUsername(%q): %v", w.Username, err)
		}
		if d := diffAccount(got, w); d != "" {
			t.Errorf("AccountByUsername(%q): %s", w.Username, d)
		}
	}
	users, err := b.Users(ctx, []chat.ID{want.ID})
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if len(users) != 1 || diffUser(users[0], want.User) != "" {
		t.Errorf("Users(%d) = %+v, want [%+v]", want.ID, users, want.User)
	}
}

func testAccountByUsernameNotFound(t *testing.T, b store.Backend) {
	ctx := t.Context()
	if _, err := b.AccountByUsername(ctx, "nobody"); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("AccountByUsername on an empty store: err = %v, want ErrNotFound", err)
	}
	mkUser(t, b, 1, "billy")
	// Neither a prefix nor an extension of a username is that username.
	for _, name := range []string{"bill", "billy_", "billyy", "BILLY", "nobody"} {
		if a, err := b.AccountByUsername(ctx, name); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("AccountByUsername(%q) = %+v, %v; want ErrNotFound", name, a, err)
		}
	}
}

func testUsernameTaken(t *testing.T, b store.Backend) {
	ctx := t.Context()
	first := mkUser(t, b, 1, "billy")
	dup := account(2, "billy")
	if _, err := b.CreateAccount(ctx, dup); !errors.Is(err, chat.ErrUsernameTaken) {
		t.Fatalf("CreateAccount with a taken username: err = %v, want ErrUsernameTaken", err)
	}
	got, err := b.AccountByUsername(ctx, "billy")
	if err != nil {
		t.Fatalf("AccountByUsername: %v", err)
	}
	if d := diffAccount(got, account(1, "billy")); d != "" {
		t.Errorf("after a refused duplicate, AccountByUsername: %s", d)
	}
	// The refused account left nothing behind.
	users, err := b.Users(ctx, []chat.ID{dup.ID})
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if len(users) != 0 {
		t.Errorf("the refused account is stored: Users(%d) = %+v", dup.ID, users)
	}
	// Replaying the winning call succeeds and leaves the same state.
	if got, err := b.CreateAccount(ctx, account(1, "billy")); err != nil || got.ID != first.ID {
		t.Errorf("replayed CreateAccount = %+v, %v; want ID %d", got, err, first.ID)
	}
	got, err = b.AccountByUsername(ctx, "billy")
	if err != nil || got.ID != first.ID {
		t.Errorf("after a replay, AccountByUsername = %+v, %v; want ID %d", got, err, first.ID)
	}
	// Other usernames are still free, even close ones.
	mkUser(t, b, 3, "billy2")
	mkUser(t, b, 4, "bill")
}

func testUsernameTakenConcurrent(t *testing.T, b store.Backend) {
	ctx := t.Context()
	const n = 20
	errs := make([]error, n)
	runConcurrently(n, func(i int) {
		_, errs[i] = b.CreateAccount(ctx, account(100+i, "contested"))
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("goroutines %d and %d both created username %q", winner, i, "contested")
			}
			winner = i
		case !errors.Is(err, chat.ErrUsernameTaken):
			t.Errorf("goroutine %d: err = %v, want nil or ErrUsernameTaken", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no goroutine created the account: %v", errs)
	}
	got, err := b.AccountByUsername(ctx, "contested")
	if err != nil {
		t.Fatalf("AccountByUsername: %v", err)
	}
	if d := diffAccount(got, account(100+winner, "contested")); d != "" {
		t.Errorf("the stored account is not the winner's (goroutine %d): %s", winner, d)
	}
	ids := make([]chat.ID, n)
	for i := range ids {
		ids[i] = userID(100 + i)
	}
	users, err := b.Users(ctx, ids)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if len(users) != 1 || users[0].ID != userID(100+winner) {
		t.Errorf("Users(all 20 candidates) = %+v, want only the winner %d", users, userID(100+winner))
	}
}

// A sign-up whose outcome its caller did not learn is retried with the same
// request, under a new ID (the service makes one per attempt): the retry
// gets the account the first attempt made, never a second ID nor "username
// taken", and the retry's ID names no user. Another sign-up with the same
// username (its own salted password hash) is still refused.
func testCreateAccountRetried(t *testing.T, b store.Backend) {
	ctx := t.Context()
	first := account(1, "billy")
	if _, err := b.CreateAccount(ctx, first); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	retry := first
	retry.ID = userID(2)
	retry.DisplayName = "other display name"
	retry.CreatedAt = first.CreatedAt.Add(time.Second)
	got, err := b.CreateAccount(ctx, retry)
	if err != nil {
		t.Fatalf("retried CreateAccount under a new ID: %v", err)
	}
	if d := diffAccount(got, first); d != "" {
		t.Errorf("retried CreateAccount returned another account than the first attempt's: %s", d)
	}
	// Retries racing each other (and the stored one) agree on one account.
	const n = 8
	ids := make([]chat.ID, n)
	results := make([]chat.Account, n)
	errs := make([]error, n)
	runConcurrently(n, func(i int) {
		r := first
		r.ID = userID(10 + i)
		ids[i] = r.ID
		results[i], errs[i] = b.CreateAccount(ctx, r)
	})
	for i := range n {
		if errs[i] != nil || results[i].ID != first.ID {
			t.Errorf("concurrent retry %d = %+v, %v; want ID %d", i, results[i], errs[i], first.ID)
		}
	}
	users, err := b.Users(ctx, append(ids, retry.ID, first.ID))
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if len(users) != 1 || diffUser(users[0], first.User) != "" {
		t.Errorf("Users(the retries' IDs and the first's) = %+v, want only %+v", users, first.User)
	}
	got, err = b.AccountByUsername(ctx, "billy")
	if err != nil || diffAccount(got, first) != "" {
		t.Errorf("AccountByUsername after retries = %+v, %v; want %+v", got, err, first)
	}
	found, err := b.SearchUsers(ctx, "billy", 10)
	if err != nil || len(found) != 1 || found[0].ID != first.ID {
		t.Errorf("SearchUsers(billy) after retries = %+v, %v; want only ID %d", found, err, first.ID)
	}
	// Another person's sign-up for the name: refused, nothing stored.
	other := account(3, "billy")
	if _, err := b.CreateAccount(ctx, other); !errors.Is(err, chat.ErrUsernameTaken) {
		t.Errorf("another sign-up for a taken username: %v, want ErrUsernameTaken", err)
	}
	if users, err := b.Users(ctx, []chat.ID{other.ID}); err != nil || len(users) != 0 {
		t.Errorf("the refused sign-up left Users(%d) = %+v, %v", other.ID, users, err)
	}
}

func testUsers(t *testing.T, b store.Backend) {
	ctx := t.Context()
	var all []chat.User
	for i, name := range []string{"anna", "billy", "carl", "dora"} {
		all = append(all, mkUser(t, b, i+1, name))
	}
	missing := userID(99)
	cases := []struct {
		ask  []chat.ID
		want []chat.User
	}{
		{nil, nil},
		{[]chat.ID{missing}, nil},
		{[]chat.ID{all[2].ID}, []chat.User{all[2]}},
		// The order asked, not the order of IDs or names.
		{[]chat.ID{all[3].ID, all[0].ID, all[2].ID}, []chat.User{all[3], all[0], all[2]}},
		// Missing IDs are left out, wherever they are.
		{[]chat.ID{missing, all[1].ID, 0, all[0].ID, missing + 1}, []chat.User{all[1], all[0]}},
	}
	for _, c := range cases {
		got, err := b.Users(ctx, c.ask)
		if err != nil {
			t.Fatalf("Users(%v): %v", c.ask, err)
		}
		if len(got) != len(c.want) {
			t.Errorf("Users(%v) = %+v, want %+v", c.ask, got, c.want)
			continue
		}
		for i := range got {
			if d := diffUser(got[i], c.want[i]); d != "" {
				t.Errorf("Users(%v)[%d]: %s", c.ask, i, d)
			}
		}
	}
}

func testSearchUsers(t *testing.T, b store.Backend) {
	ctx := t.Context()
	// Created out of order, with every character usernames may hold, so that
	// the order can only come from the usernames (byte order).
	// "bilz" and "bilzzz" catch an upper bound computed as prefix+"z".
	names := []string{"bob", "bil_x", "billy", "bil", "bilzzz", "bill", "bil.z", "bil-y", "bil9", "anna", "bzz", "b.aa", "carl", "bil0", "bilz", "bim"}
	byName := map[string]chat.User{}
	for i, name := range names {
		byName[name] = mkUser(t, b, i+1, name)
	}
	cases := []struct {
		prefix string
		limit  int
		want   []string
	}{
		{"bil", 20, []string{"bil", "bil-y", "bil.z", "bil0", "bil9", "bil_x", "bill", "billy", "bilz", "bilzzz"}},
		{"bil", 3, []string{"bil", "bil-y", "bil.z"}},
		{"bil", 1, []string{"bil"}},
		{"bi", 20, []string{"bil", "bil-y", "bil.z", "bil0", "bil9", "bil_x", "bill", "billy", "bilz", "bilzzz", "bim"}},
		{"bilz", 20, []string{"bilz", "bilzzz"}},
		{"bill", 20, []string{"bill", "billy"}},
		{"billy", 20, []string{"billy"}},
		{"billyy", 20, nil},
		{"bil-", 20, []string{"bil-y"}},
		{"b", 20, []string{"b.aa", "bil", "bil-y", "bil.z", "bil0", "bil9", "bil_x", "bill", "billy", "bilz", "bilzzz", "bim", "bob", "bzz"}},
		{"b", 14, []string{"b.aa", "bil", "bil-y", "bil.z", "bil0", "bil9", "bil_x", "bill", "billy", "bilz", "bilzzz", "bim", "bob", "bzz"}},
		{"b", 13, []string{"b.aa", "bil", "bil-y", "bil.z", "bil0", "bil9", "bil_x", "bill", "billy", "bilz", "bilzzz", "bim", "bob"}},
		{"c", 20, []string{"carl"}},
		{"d", 20, nil},
		{"zzz", 20, nil},
		{"a", 20, []string{"anna"}},
	}
	for _, c := range cases {
		got, err := b.SearchUsers(ctx, c.prefix, c.limit)
		if err != nil {
			t.Fatalf("SearchUsers(%q, %d): %v", c.prefix, c.limit, err)
		}
		var gotNames []string
		for _, u := range got {
			gotNames = append(gotNames, u.Username)
			if d := diffUser(u, byName[u.Username]); d != "" {
				t.Errorf("SearchUsers(%q, %d): user %q: %s", c.prefix, c.limit, u.Username, d)
			}
		}
		if !slices.Equal(gotNames, c.want) {
			t.Errorf("SearchUsers(%q, %d) = %q, want %q", c.prefix, c.limit, gotNames, c.want)
		}
	}
	// More matches than the usual limit of 20, all returned in order.
	var many []string
	for i := range 25 {
		name := fmt.Sprintf("many%02d", i)
		many = append(many, name)
		mkUser(t, b, 1000+i, name)
	}
	got, err := b.SearchUsers(ctx, "many", 30)
	if err != nil {
		t.Fatalf("SearchUsers(many): %v", err)
	}
	var gotNames []string
	for _, u := range got {
		gotNames = append(gotNames, u.Username)
	}
	if !slices.Equal(gotNames, many) {
		t.Errorf("SearchUsers(%q, 30) = %q, want %q", "many", gotNames, many)
	}
}
