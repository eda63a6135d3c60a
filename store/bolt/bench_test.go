package bolt

import (
	"fmt"
	"testing"
	"time"

	"github.com/chatcluster/chat"
)

// benchMessages returns n messages of conversation conv, one per second
// from start.
func benchMessages(conv string, start time.Time, first, n int) []chat.Message {
	msgs := make([]chat.Message, n)
	for i := range msgs {
		id := chat.FirstID(start.Add(time.Duration(first+i)*time.Second)) + 5
		msgs[i] = chat.Message{
			ID: id, Conversation: conv, Sender: chat.ID(1 + i%3),
			Body:     "a message of an ordinary length, about sixty bytes or so.",
			SentAt:   id.Time(),
			ClientID: fmt.Sprintf("client-%d", first+i),
		}
	}
	return msgs
}

// BenchmarkSaveMessages saves batches of new messages spread over 16
// conversations, as the Service does with what the stream delivers. Each
// batch is one transaction and one fsync, so ns/op is mostly the disk's
// sync latency and msgs/s grows with the batch.
func BenchmarkSaveMessages(b *testing.B) {
	for _, size := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			be := openTemp(b)
			ctx := b.Context()
			convs := make([]string, 16)
			for i := range convs {
				convs[i] = fmt.Sprint(1000 + i)
			}
			// One batch, its IDs renewed each round, so that the allocations
			// reported are the backend's.
			batch := benchMessages(convs[0], t0, 0, size)
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				for i := range batch {
					batch[i].ID = chat.FirstID(t0) + chat.ID(n+i)
					batch[i].Conversation = convs[(n+i)%len(convs)]
				}
				n += size
				if err := be.SaveMessages(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkMessages reads 50-message pages of a 20,000-message conversation
// that shares the file with 15 others.
func BenchmarkMessages(b *testing.B) {
	be := openTemp(b)
	ctx := b.Context()
	const perConv = 20000
	for c := range 16 {
		conv := fmt.Sprint(1000 + c)
		for i := 0; i < perConv; i += 5000 {
			if err := be.SaveMessages(ctx, benchMessages(conv, t0, i, 5000)); err != nil {
				b.Fatal(err)
			}
		}
	}
	mid := benchMessages("1007", t0, perConv/2, 1)[0].ID
	for _, bc := range []struct {
		name string
		p    chat.Page
	}{
		{"newest", chat.Page{Limit: 50}},
		{"before", chat.Page{Before: mid, Limit: 50}},
		{"after", chat.Page{After: mid, Limit: 50}},
		{"before/limit=200", chat.Page{Before: mid, Limit: 200}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m, more, err := be.Messages(ctx, "1007", bc.p)
				if err != nil || len(m) != bc.p.Limit || !more {
					b.Fatalf("page: %d messages, more %v, %v", len(m), more, err)
				}
			}
		})
	}
}

// BenchmarkConversations lists the 50 most recent of a user's 500
// conversations, each with messages, unread ones included.
func BenchmarkConversations(b *testing.B) {
	be := openTemp(b)
	ctx := b.Context()
	var batch []chat.Message
	for c := range 500 {
		conv := fmt.Sprint(5000 + c)
		_, _, err := be.CreateConversation(ctx, chat.Conversation{
			ID: conv, Kind: chat.Group, Title: conv, CreatedBy: 1, CreatedAt: t0,
			Members: []chat.ID{1, 2, 3, chat.ID(100 + c)},
		})
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, benchMessages(conv, t0, c*7, 20)...)
	}
	if err := be.SaveMessages(ctx, batch); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := be.Conversations(ctx, 1, 50)
		if err != nil || len(s) != 50 {
			b.Fatalf("Conversations: %d, %v", len(s), err)
		}
	}
}
