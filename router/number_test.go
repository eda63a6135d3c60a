package router

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go/jetstream"
)

// streamNumbers reads every record of the stream in order: its kind and
// the number it carries.
func streamNumbers(t *testing.T, st jetstream.Stream) (kinds []chat.EventKind, ids []chat.ID, nums []chat.Number) {
	t.Helper()
	ctx := context.Background()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("record %d: %v", seq, err)
		}
		num, err := chat.ParseNumber(raw.Header.Get(chat.HdrNum), raw.Header.Get(chat.HdrNumBase))
		if err != nil {
			t.Fatalf("record %d: %v", seq, err)
		}
		id, _ := chat.ParseID(raw.Header.Get(chat.HdrMsgID))
		kinds = append(kinds, chat.RecordKind(raw.Header.Get(chat.HdrKind)))
		ids = append(ids, id)
		nums = append(nums, num)
	}
	return kinds, ids, nums
}

// Each message record carries the conversation's running count, however
// the sends arrive: from two gateways racing (conflicts and reloaded
// tails), batched within one, resent (a duplicate takes no number), with
// edits in between (which carry the count unchanged). A conversation whose
// records all left the stream starts a new run.
func TestPublishNumbersMessages(t *testing.T) {
	s := runServer(t)
	ctx := context.Background()
	_, js := connect(t, s)
	st, err := EnsureStream(ctx, js, StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g1, _ := chat.NewGenerator(1)
	g2, _ := chat.NewGenerator(2)
	p1, p2 := NewPublisher(js, st, g1), NewPublisher(js, st, g2)
	const conv, per = "42", 30
	var wg sync.WaitGroup
	for gi, p := range []*Publisher{p1, p2} {
		for w := range 3 {
			wg.Go(func() {
				for i := range per {
					m, _, err := p.Publish(ctx, chat.Message{Conversation: conv, Sender: chat.ID(gi + 1), Body: "x",
						ClientID: fmt.Sprintf("g%dw%di%d", gi, w, i)})
					if err != nil {
						t.Error(err)
						return
					}
					if i%7 == 0 {
						_, _, err := p.PublishChange(ctx, chat.Change{Conversation: conv, Kind: chat.EventEdit,
							MessageID: m.ID, User: m.Sender, Body: "y"})
						if err != nil {
							t.Error(err)
						}
					}
					if i%5 == 0 { // a resend: deduplicated, no number taken
						if _, dup, err := p.Publish(ctx, chat.Message{Conversation: conv, Sender: chat.ID(gi + 1),
							Body: "x", ClientID: fmt.Sprintf("g%dw%di%d", gi, w, i)}); err != nil || !dup {
							t.Errorf("resend: %v dup=%v", err, dup)
						}
					}
				}
			})
		}
	}
	wg.Wait()
	kinds, ids, nums := streamNumbers(t, st)
	var want chat.Number
	messages := 0
	for i, k := range kinds {
		if k == chat.EventMessage {
			want = want.Next(ids[i])
			messages++
		}
		if nums[i] != want {
			t.Fatalf("record %d (%s, ID %d): number %+v, want %+v", i, k, ids[i], nums[i], want)
		}
	}
	if messages != 6*per || want.N != uint64(messages) || want.Base != ids[0] {
		t.Fatalf("%d messages numbered up to %+v; want %d numbered from the first, ID %d", messages, want, 6*per, ids[0])
	}

	// A gateway that knows nothing of the conversation reads the number
	// from the stream's last record, here an edit.
	last, _, _ := p1.Publish(ctx, chat.Message{Conversation: conv, Sender: 1, Body: "x", ClientID: "before-edit"})
	if _, _, err := p1.PublishChange(ctx, chat.Change{Conversation: conv, Kind: chat.EventEdit, MessageID: last.ID, User: 1, Body: "z"}); err != nil {
		t.Fatal(err)
	}
	p3 := NewPublisher(js, st, g2)
	if _, _, err := p3.Publish(ctx, chat.Message{Conversation: conv, Sender: 2, Body: "x", ClientID: "fresh-gateway"}); err != nil {
		t.Fatal(err)
	}
	_, _, nums = streamNumbers(t, st)
	if got := nums[len(nums)-1]; got != (chat.Number{N: want.N + 2, Base: want.Base}) {
		t.Fatalf("a fresh gateway numbered %+v, want %d of run %d", got, want.N+2, want.Base)
	}

	// Every record gone (aged out): the next message starts a new run.
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(chat.MsgSubject(conv))); err != nil {
		t.Fatal(err)
	}
	p4 := NewPublisher(js, st, g1)
	m, _, err := p4.Publish(ctx, chat.Message{Conversation: conv, Sender: 1, Body: "x", ClientID: "after-purge"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, nums = streamNumbers(t, st)
	if got := nums[len(nums)-1]; got != (chat.Number{N: 1, Base: m.ID}) {
		t.Fatalf("after the stream lost the conversation: %+v, want 1 of a run starting at %d", got, m.ID)
	}
}
