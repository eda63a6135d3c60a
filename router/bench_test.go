package router

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	benchSends(b, NewPublisher(js, st, g))
}

// benchSends has 64 senders publish b.N messages into one conversation
// and reports acked sends per second.
func benchSends(b *testing.B, p *Publisher) {
	ctx := context.Background()
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

// BenchmarkPublishOneConversationR3 is the same on a three-server
// JetStream cluster with the stream at R3: every publish waits for a
// quorum, so what one conversation can take depends on how many sends
// share a round trip.
func BenchmarkPublishOneConversationR3(b *testing.B) {
	urls := runCluster(b, 3)
	nc, err := nats.Connect(urls[0])
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	st, err := EnsureStream(ctx, js, StreamConfig{Replicas: 3})
	if err != nil {
		b.Fatal(err)
	}
	g, _ := chat.NewGenerator(8)
	benchSends(b, NewPublisher(js, st, g))
}

// runCluster starts n embedded nats-servers with JetStream routed into one
// cluster on free loopback ports, and returns their client URLs.
func runCluster(tb testing.TB, n int) []string {
	tb.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var urls []string
	for i := 0; i < n; i++ {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprint("n", i), Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: tb.TempDir(),
			NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			tb.Fatal(err)
		}
		s.Start()
		tb.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		if !s.ReadyForConnections(10 * time.Second) {
			tb.Fatal("nats not ready")
		}
		urls = append(urls, s.ClientURL())
	}
	return urls
}
