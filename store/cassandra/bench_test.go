package cassandra

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatcluster/chat"
)

// Benchmarks against the real node of CHAT_TEST_CASSANDRA, e.g.
//
//	CHAT_TEST_CASSANDRA=127.0.0.1:9042 go test -run '^$' -bench . -benchtime 20x ./store/cassandra/

var benchBase = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func benchConv(b *testing.B, be *Backend, id string, members ...chat.ID) {
	b.Helper()
	if _, _, err := be.CreateConversation(b.Context(), chat.Conversation{
		ID: id, Kind: chat.Group, Title: id, CreatedBy: members[0], CreatedAt: benchBase, Members: members,
	}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSaveMessages saves batches of 100 messages, as the store's
// JetStream consumer does, spread over convs conversations.
func BenchmarkSaveMessages(b *testing.B) {
	for _, convs := range []int{1, 20} {
		b.Run(fmt.Sprintf("conversations=%d", convs), func(b *testing.B) {
			be := openEmpty(b)
			const batch = 100
			next := chat.FirstID(benchBase)
			b.ResetTimer()
			for range b.N {
				msgs := make([]chat.Message, batch)
				for i := range msgs {
					next += 1 << 12
					msgs[i] = chat.Message{
						ID: next, Conversation: fmt.Sprint(1 + i%convs), Sender: 7,
						Body: "a message body of a typical length, about sixty bytes long.", SentAt: next.Time(), ClientID: next.String(),
					}
				}
				if err := be.SaveMessages(b.Context(), msgs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkConversations lists the 1,000 conversations of a user who is in
// 1,000, each with a message (the hello frame's list): first with every
// conversation unread (the worst case: an unread count for each), then with
// every one read (the usual case: one read per conversation).
func BenchmarkConversations(b *testing.B) {
	be := openEmpty(b)
	const n = 1000
	me, other := chat.ID(1), chat.ID(2)
	last := make([]chat.ID, n)
	err := be.each(b.Context(), n, func(ctx context.Context, i int) error {
		id := fmt.Sprint(100 + i)
		if _, _, err := be.CreateConversation(ctx, chat.Conversation{
			ID: id, Kind: chat.Group, Title: id, CreatedBy: me, CreatedAt: benchBase, Members: []chat.ID{me, other},
		}); err != nil {
			return err
		}
		last[i] = chat.FirstID(benchBase.Add(time.Duration(i) * time.Minute))
		return be.SaveMessages(ctx, []chat.Message{{ID: last[i], Conversation: id, Sender: other, Body: "hi", SentAt: last[i].Time(), ClientID: "x"}})
	})
	if err != nil {
		b.Fatal(err)
	}
	list := func(b *testing.B, wantUnread int) {
		for range b.N {
			s, err := be.Conversations(b.Context(), me, n)
			if err != nil {
				b.Fatal(err)
			}
			if len(s) != n || s[0].Unread != wantUnread {
				b.Fatalf("%d conversations, first unread %d", len(s), s[0].Unread)
			}
		}
	}
	b.Run("unread=all", func(b *testing.B) { list(b, 1) })
	err = be.each(b.Context(), n, func(ctx context.Context, i int) error {
		_, _, err := be.MarkRead(ctx, fmt.Sprint(100+i), me, last[i])
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("unread=none", func(b *testing.B) { list(b, 0) })
}

// BenchmarkMessagesPage reads the newest page of 50 of a conversation with
// 1,000 messages over several buckets.
func BenchmarkMessagesPage(b *testing.B) {
	be := openEmpty(b)
	benchConv(b, be, "1", 1)
	var msgs []chat.Message
	for i := range 1000 {
		id := chat.FirstID(benchBase.Add(time.Duration(i) * time.Hour))
		msgs = append(msgs, chat.Message{ID: id, Conversation: "1", Sender: 1, Body: "hello", SentAt: id.Time(), ClientID: id.String()})
	}
	if err := be.SaveMessages(b.Context(), msgs); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		m, more, err := be.Messages(b.Context(), "1", chat.Page{Limit: 50})
		if err != nil || len(m) != 50 || !more {
			b.Fatalf("page: %d messages, more %v, %v", len(m), more, err)
		}
	}
}
