package cassandra

import (
	"slices"
	"strings"
	"testing"

	"github.com/chatcluster/chat"
)

func TestPrefixSeen(t *testing.T) {
	var s prefixSeen
	for _, k := range []string{"abcd", "----", "____", "zzzz", "9.-_", "abc"} {
		if !s.add(k) {
			t.Errorf("add(%q) first time = false", k)
		}
		if s.add(k) {
			t.Errorf("add(%q) again = true", k)
		}
	}
	s.forget("abcd")
	s.forget("abc")
	if !s.add("abcd") || !s.add("abc") {
		t.Error("a forgotten key is not new again")
	}
	if len(searchAlphabet) != 39 || !slices.IsSorted(searchAlphabet) {
		t.Errorf("alphabet %q", searchAlphabet)
	}
}

// TestSearchPartitionsBounded: sign-ups write the bounded layout (a
// partition per four-character prefix, their keys indexed under the first
// character) and neither the 39 initial partitions nor the one partition
// of initials; accounts stored before in the old layout are still found,
// merged in name order; results equal a sorted scan for every prefix.
func TestSearchPartitionsBounded(t *testing.T) {
	b := openEmpty(t)
	ctx := t.Context()
	var names []string
	for i, first := range []string{"an", "anna", "annabel", "ann", "bo", "bob", "bobby", "b.b", "b-b", "bo_", "carl", "carlo", "zed"} {
		names = append(names, first)
		if len(first) < 3 {
			continue
		}
		a := chat.Account{User: chat.User{ID: chat.ID(100 + i), Username: first, DisplayName: "D" + first}, PasswordHash: "h"}
		if _, err := b.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	names = slices.DeleteFunc(names, func(n string) bool { return len(n) < 3 })
	for _, tbl := range []string{"users_by_initial", "username_initials"} {
		var n int
		if err := env.admin.Query(`SELECT count(*) FROM ` + tbl).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s has %d rows after sign-ups (%v), want 0", tbl, n, err)
		}
	}
	var keys []string
	iter := env.admin.Query(`SELECT prefix FROM username_prefixes WHERE initial = 'b'`).Iter()
	var k string
	for iter.Scan(&k) {
		keys = append(keys, k)
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"b-b", "b.b", "bo_", "bob", "bobb"}; !slices.Equal(keys, want) {
		t.Errorf("username_prefixes for b = %q, want %q", keys, want)
	}

	// Accounts of the old layout, interleaved with the new ones.
	for i, old := range []string{"anka", "bobo", "bz9", "carla"} {
		if err := env.admin.Query(`INSERT INTO users_by_initial (initial, username, user_id, display_name) VALUES (?, ?, ?, ?)`,
			old[:1], old, 500+i, "D"+old).Exec(); err != nil {
			t.Fatal(err)
		}
		if err := env.admin.Query(`INSERT INTO username_initials (shard, initial) VALUES (0, ?)`, old[:1]).Exec(); err != nil {
			t.Fatal(err)
		}
		names = append(names, old)
	}
	// An account in both layouts is listed once.
	if err := env.admin.Query(`INSERT INTO users_by_initial (initial, username, user_id, display_name) VALUES ('b', 'bob', 105, 'Dbob')`).Exec(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	for _, prefix := range []string{"", "a", "an", "ann", "anna", "annab", "b", "bo", "bob", "bobb", "bobo", "b.", "c", "carl", "z", "x", "zedd"} {
		for _, limit := range []int{1, 2, 3, 100} {
			var want []string
			for _, n := range names {
				if strings.HasPrefix(n, prefix) && len(want) < limit {
					want = append(want, n)
				}
			}
			got, err := b.SearchUsers(ctx, prefix, limit)
			if err != nil {
				t.Fatal(err)
			}
			var gotNames []string
			for _, u := range got {
				gotNames = append(gotNames, u.Username)
				if u.DisplayName != "D"+u.Username {
					t.Errorf("SearchUsers(%q): %+v", prefix, u)
				}
			}
			if !slices.Equal(gotNames, want) {
				t.Errorf("SearchUsers(%q, %d) = %q, want %q", prefix, limit, gotNames, want)
			}
		}
	}
}
