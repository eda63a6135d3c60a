package router

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chatcluster/chat"
)

// BenchmarkPublishOneConversation: acked sends into one conversation from
// one gateway, 64 senders at once (one embedded server, R1). Sends that
// queue up behind a publish go together as an atomic batch; report
// sends/s.
func BenchmarkPublishOneConversation(b *testing.B) {
	s := runServer(b)
	ctx := context.Background()
	_, js := connect(b, s)
	st, err := EnsureStream(ctx, js, StreamConfig{})
	if err != nil {
		b.Fatal(err)
	}
	g, _ := chat.NewGenerator(7)
	p := NewPublisher(js, st, g)
	var next atomic.Int64
	const senders = 64
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := 0; w < senders; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if _, _, err := p.Publish(ctx, chat.Message{Conversation: "1", Sender: 1, Body: "hello", ClientID: fmt.Sprint(i)}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
}
