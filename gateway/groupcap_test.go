package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
	"golang.org/x/sync/errgroup"
)

// Issue 14 parts 3 and 4: a user put into as many groups as a user may be
// in (store.DefaultMaxGroupsPerUser), each with a title of the largest
// size, still connects: hello is bounded in bytes and count and carries
// its cursor. One more group fails for the one who adds, and the victim
// is unaffected.
func TestHelloAtTheGroupCap(t *testing.T) {
	e := newBigEnv(t)
	const perCreator = store.DefaultGroupsPerHour
	nCreators := store.DefaultMaxGroupsPerUser / perCreator
	us := e.fastUsers(t, "cap", nCreators+2)
	victim, late := us[0], us[nCreators+1]
	creators := us[1 : nCreators+1]
	vid, err := chat.ParseID(victim.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	title := strings.Repeat("\U0001F600", chat.MaxTitle) // 512 bytes
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(4)
	for _, c := range creators {
		cid, err := chat.ParseID(c.User.ID)
		if err != nil {
			t.Fatal(err)
		}
		g.Go(func() error {
			for i := range perCreator {
				if _, err := e.st.Group(ctx, title, cid, []chat.ID{vid}); err != nil {
					return fmt.Errorf("group %d of %s: %w", i, c.User.Username, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	// One more fails for the adder, clearly, and changes nothing.
	e.fail(t, "POST", "/api/v1/conversations", late.Token, map[string]any{"title": "one more", "members": []string{victim.User.Username}},
		http.StatusBadRequest, "invalid_request")
	mine := e.group(t, late, "mine")
	e.fail(t, "POST", "/api/v1/conversations/"+mine.ID+"/members", late.Token, map[string]string{"username": victim.User.Username},
		http.StatusBadRequest, "invalid_request")

	c := e.dialNoHello(t, "victim", e.wsBase+"?token="+url.QueryEscape(victim.Token), nil)
	f := c.take(t, "hello", func(frame) bool { return true })
	if f.Type != "hello" {
		t.Fatalf("first frame %.300s", f.Raw)
	}
	if len(f.Raw) > chat.MaxPageBytes+4096 {
		t.Errorf("hello is %d bytes, over the page bound %d", len(f.Raw), chat.MaxPageBytes)
	}
	var h struct {
		Conversations []apiConversation `json:"conversations"`
		NextBefore    *string           `json:"next_before"`
	}
	f.decode(t, &h)
	if len(h.Conversations) == 0 || len(h.Conversations) >= store.DefaultMaxGroupsPerUser || h.NextBefore == nil {
		t.Errorf("hello of %d bytes lists %d conversations, next_before %v: want a bounded page with its cursor", len(f.Raw), len(h.Conversations), h.NextBefore)
	}
	// The victim is not stuck: a ping is answered, and leaving one group
	// makes room again.
	pong := c.request(t, "p1", map[string]any{"type": "ping", "id": "p1"})
	if pong.Type != "pong" {
		t.Errorf("ping answered %s", pong.Raw)
	}
	e.call(t, "DELETE", "/api/v1/conversations/"+h.Conversations[0].ID+"/members/me", victim.Token, nil, http.StatusNoContent, nil)
	e.call(t, "POST", "/api/v1/conversations/"+mine.ID+"/members", late.Token, map[string]string{"username": victim.User.Username}, http.StatusOK, nil)
}
