// Command seed fills a `chat dev` data folder, before the server starts,
// with a group of many members: the browser tests' 10,000-member group. A
// sign-up over HTTP costs an argon2id hash (about 50 ms), so 10,000 of them
// would take minutes; here only the owner, who logs in through the browser,
// gets a real hash.
//
//	go run ./web/e2e/seed -data DIR -owner anna -password PW -members 10000
//
// It prints the group's ID.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/gateway"
	"github.com/chatcluster/chat/store/bolt"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run() error {
	data := flag.String("data", "chat-data", "the chat dev data folder")
	owner := flag.String("owner", "", "username of the group's creator (a real password)")
	password := flag.String("password", "", "the owner's password")
	members := flag.Int("members", chat.MaxGroupMembers, "members of the group, the owner included")
	title := flag.String("title", "Everyone", "the group's title")
	flag.Parse()
	if *owner == "" || *password == "" || *members < 1 || *members > chat.MaxGroupMembers {
		return fmt.Errorf("need -owner, -password and 1..%d -members", chat.MaxGroupMembers)
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	b, err := bolt.Open(filepath.Join(*data, "store.db"), bolt.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer b.Close() // syncs: the file is filled without an fsync per account
	// The last node number: chat dev leases the lowest free one, so IDs
	// made here never collide with its own.
	gen, err := chat.NewGenerator(1023)
	if err != nil {
		return err
	}
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	hash, err := gateway.HashPassword(*password)
	if err != nil {
		return err
	}
	ids := make([]chat.ID, *members)
	for i := range ids {
		name, h := *owner, hash
		if i > 0 {
			name, h = fmt.Sprintf("%s_m%d", *owner, i), "seeded: cannot log in"
		}
		a := chat.Account{User: chat.User{ID: gen.Next(), Username: name, DisplayName: fmt.Sprintf("Member %d", i)},
			PasswordHash: h, CreatedAt: now}
		if i == 0 {
			a.DisplayName = *owner
		}
		if _, err := b.CreateAccount(ctx, a); err != nil {
			return fmt.Errorf("account %s: %w", name, err)
		}
		ids[i] = a.ID
	}
	first := min(len(ids), chat.MaxMembersPage)
	c, _, err := b.CreateConversation(ctx, chat.Conversation{ID: gen.Next().String(), Kind: chat.Group, Title: *title,
		CreatedBy: ids[0], CreatedAt: now, Members: ids[:first]})
	if err != nil {
		return err
	}
	for s := first; s < len(ids); s += chat.MaxMembersPage {
		if _, _, err := b.AddMembers(ctx, c.ID, ids[s:min(s+chat.MaxMembersPage, len(ids))], now); err != nil {
			return err
		}
	}
	if err := b.Close(); err != nil {
		return err
	}
	fmt.Println(c.ID)
	return nil
}
