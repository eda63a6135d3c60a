package cassandra

import (
	"errors"
	"testing"
	"time"

	"github.com/chatcluster/chat"
)

// A store that dies right after claiming a username leaves an account whose
// user exists (no "half-created" account: hello and Users find it), and
// the retried sign-up, under a new ID, completes it and gets its ID.
func TestCreateAccountDiesAfterClaim(t *testing.T) {
	b := openEmpty(t)
	ctx := t.Context()
	died := errors.New("the process died here")
	b.claimed = func() error { return died }
	a := chat.Account{User: chat.User{ID: 1001, Username: "halfway", DisplayName: "Half Way"},
		PasswordHash: "$argon2id$salted-hash-of-one-request", CreatedAt: time.UnixMilli(1_770_000_000_000).UTC()}
	if _, err := b.CreateAccount(ctx, a); !errors.Is(err, died) {
		t.Fatalf("CreateAccount with the process dying after the claim: %v", err)
	}
	if acct, err := b.AccountByUsername(ctx, "halfway"); err != nil || acct.ID != a.ID {
		t.Fatalf("the claim: %+v, %v", acct, err)
	}
	users, err := b.Users(ctx, []chat.ID{a.ID})
	if err != nil || len(users) != 1 || users[0] != a.User {
		t.Fatalf("a claimed username without its user: Users(%d) = %+v, %v", a.ID, users, err)
	}

	b.claimed = nil
	retry := a
	retry.ID = 1002
	got, err := b.CreateAccount(ctx, retry)
	if err != nil || got.ID != a.ID {
		t.Fatalf("the retried sign-up = %+v, %v; want ID %d", got, err, a.ID)
	}
	found, err := b.SearchUsers(ctx, "half", 10)
	if err != nil || len(found) != 1 || found[0] != a.User {
		t.Fatalf("SearchUsers after the retry = %+v, %v", found, err)
	}
	if users, err := b.Users(ctx, []chat.ID{retry.ID}); err != nil || len(users) != 0 {
		t.Fatalf("the retry's ID names a user: %+v, %v", users, err)
	}
}
