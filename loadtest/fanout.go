package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// The fanout scenario measures one room of many subscribers on the chat
// gateway and on Centrifugo, one after the other in the same run, with the
// same client code: the same connections, the same publish rate, the same
// measurement window. A publish carries its send time; every subscriber
// records the delay at which it received it. Each server's CPU over the
// window comes from /proc, so the report gives server CPU per delivery.
//
// Centrifugo must allow anonymous clients to subscribe and publish to the
// room's channel; `chatload fanout --print-centrifugo-config` prints such a
// configuration (v6 format).

// FanoutOptions configure the fanout scenario.
type FanoutOptions struct {
	ChatURL       string        // chat gateway base URL ("" skips it)
	CentrifugoURL string        // Centrifugo base URL ("" skips it)
	Subscribers   int           // connections in the room, per server
	PerUser       int           // chat: connections per subscriber user
	Rate          float64       // publishes per second
	Duration      time.Duration // measurement window
	Warmup        time.Duration // publishing before the window opens
	ChatPID       int           // read CPU from /proc when set
	CentrifugoPID int
	Channel       string
	Progress      io.Writer
}

// FanoutResult is one server's figures.
type FanoutResult struct {
	Server             string         `json:"server"`
	Subscribers        int            `json:"subscribers"`
	OfferedPerSec      float64        `json:"offered_publishes_per_sec"`
	Published          int64          `json:"published"`
	Deliveries         int64          `json:"deliveries"`
	DeliveriesPerSec   float64        `json:"deliveries_per_sec"`
	Expected           int64          `json:"expected_deliveries"`
	Latency            LatencySummary `json:"latency_ms"`
	ServerCPUSeconds   float64        `json:"server_cpu_seconds,omitempty"`
	ServerCPUPerDelivM float64        `json:"server_cpu_us_per_delivery,omitempty"`
}

const centrifugoConfig = `{
  "client": {"insecure": true, "allowed_origins": ["*"]},
  "channel": {"without_namespace": {"allow_subscribe_for_client": true, "allow_publish_for_client": true}},
  "http_server": {"address": "127.0.0.1", "port": "8000"}
}
`

func fanoutMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := FanoutOptions{Channel: "room"}
	fs := flag.NewFlagSet("chatload fanout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.ChatURL, "url", "http://127.0.0.1:8080", "chat gateway base URL (loopback only; empty to skip)")
	fs.StringVar(&o.CentrifugoURL, "centrifugo", "", "Centrifugo base URL, e.g. http://127.0.0.1:8000 (loopback only; empty to skip)")
	fs.IntVar(&o.Subscribers, "subscribers", 2000, "connections in the room, on each server")
	fs.IntVar(&o.PerUser, "per-user", 10, "chat: connections per subscriber user (devices)")
	fs.Float64Var(&o.Rate, "rate", 100, "publishes per second into the room")
	fs.DurationVar(&o.Duration, "duration", 15*time.Second, "measurement window")
	fs.DurationVar(&o.Warmup, "warmup", 3*time.Second, "publishing before the window opens")
	fs.IntVar(&o.ChatPID, "chat-pid", 0, "chat server PID, for its CPU time")
	fs.IntVar(&o.CentrifugoPID, "centrifugo-pid", 0, "Centrifugo PID, for its CPU time")
	jsonPath := fs.String("json", "", "write the results as JSON to this file")
	printConfig := fs.Bool("print-centrifugo-config", false, "print a Centrifugo v6 config for this scenario and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *printConfig {
		fmt.Fprint(stdout, centrifugoConfig)
		return 0
	}
	o.Progress = stderr
	ctx, cancel := context.WithTimeout(ctx, o.Warmup+o.Duration+10*time.Minute)
	defer cancel()
	var results []FanoutResult
	if o.ChatURL != "" {
		r, err := fanoutChat(ctx, o)
		if err != nil {
			fmt.Fprintf(stderr, "chatload fanout: chat: %v\n", err)
			return 1
		}
		results = append(results, r)
	}
	if o.CentrifugoURL != "" {
		r, err := fanoutCentrifugo(ctx, o)
		if err != nil {
			fmt.Fprintf(stderr, "chatload fanout: centrifugo: %v\n", err)
			return 1
		}
		results = append(results, r)
	}
	fmt.Fprintf(stdout, "%-11s %6s %8s %12s %10s %8s %8s %8s %10s\n", "server", "subs", "pub/s", "deliveries/s", "delivered", "p50 ms", "p99 ms", "max ms", "cpu µs/del")
	for _, r := range results {
		fmt.Fprintf(stdout, "%-11s %6d %8.0f %12.0f %9.1f%% %8.2f %8.2f %8.2f %10.2f\n", r.Server, r.Subscribers, r.OfferedPerSec,
			r.DeliveriesPerSec, 100*float64(r.Deliveries)/float64(max(r.Expected, 1)), r.Latency.P50Ms, r.Latency.P99Ms, r.Latency.MaxMs, r.ServerCPUPerDelivM)
	}
	if *jsonPath != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*jsonPath, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "chatload fanout: %v\n", err)
			return 1
		}
	}
	return 0
}

// fanConn is one subscriber or the publisher: a WebSocket read by one
// goroutine, written under a lock.
type fanConn struct {
	conn net.Conn
	r    *bufio.Reader
	wmu  sync.Mutex
}

func (c *fanConn) write(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	f := ws.NewTextFrame(p)
	f = ws.MaskFrameInPlace(f)
	return ws.WriteFrame(c.conn, f)
}

// next returns the next text message, answering pings.
func (c *fanConn) next(buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		h, err := ws.ReadHeader(c.r)
		if err != nil {
			return nil, err
		}
		if h.Length > maxServerMessage {
			return nil, errFrameTooBig
		}
		start := len(buf)
		buf = append(buf, make([]byte, h.Length)...)
		if _, err := io.ReadFull(c.r, buf[start:]); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case ws.OpPing:
			c.wmu.Lock()
			err = ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewPongFrame(buf[start:])))
			c.wmu.Unlock()
			if err != nil {
				return nil, err
			}
			buf = buf[:start]
			continue
		case ws.OpClose:
			return nil, errClosed
		case ws.OpPong:
			buf = buf[:start]
			continue
		}
		if h.Fin {
			return buf, nil
		}
	}
}

func dialFan(ctx context.Context, url string, header map[string]string) (*fanConn, error) {
	hh := make(map[string][]string, len(header))
	for k, v := range header {
		hh[k] = []string{v}
	}
	d := ws.Dialer{Timeout: 15 * time.Second, Header: ws.HandshakeHeaderHTTP(hh)}
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(conn, 4096)
	if br != nil && br.Buffered() > 0 {
		pre, _ := br.Peek(br.Buffered())
		r = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(append([]byte(nil), pre...)), conn), 4096)
	}
	return &fanConn{conn: conn, r: r}, nil
}

// fanRun is the part both servers share: subscribers that record delays,
// a publisher on a fixed schedule, CPU over the window.
type fanRun struct {
	o          FanoutOptions
	name       string
	pid        int
	subs       []*fanConn
	publish    func(i int, sentNS int64) error
	stampOf    func(msg []byte) (int64, bool) // the send time in a delivery
	deliveries atomic.Int64
	hist       Histogram
	windowOpen atomic.Bool
}

func (f *fanRun) run(ctx context.Context) (FanoutResult, error) {
	var wg sync.WaitGroup
	for _, c := range f.subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 1024)
			for {
				msg, err := c.next(buf)
				if err != nil {
					return
				}
				buf = msg[:0]
				// A Centrifugo frame may hold several replies, one a line.
				for len(msg) > 0 {
					line := msg
					if i := bytes.IndexByte(msg, '\n'); i >= 0 {
						line, msg = msg[:i], msg[i+1:]
					} else {
						msg = nil
					}
					if bytes.Equal(line, []byte("{}")) {
						_ = c.write(line) // Centrifugo's application-level ping
						continue
					}
					if sent, ok := f.stampOf(line); ok && f.windowOpen.Load() {
						f.deliveries.Add(1)
						f.hist.Record(time.Duration(time.Now().UnixNano() - sent))
					}
				}
			}
		}()
	}
	interval := time.Duration(float64(time.Second) / f.o.Rate)
	start := time.Now()
	warmEnd := start.Add(f.o.Warmup)
	end := warmEnd.Add(f.o.Duration)
	var cpu0 time.Duration
	var published int64
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.After(end) {
			break
		}
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return FanoutResult{}, ctx.Err()
			}
		}
		if !f.windowOpen.Load() && !time.Now().Before(warmEnd) {
			cpu0 = f.cpu()
			f.windowOpen.Store(true)
			warmEnd = time.Now()
			end = warmEnd.Add(f.o.Duration)
		}
		if err := f.publish(i, time.Now().UnixNano()); err != nil {
			return FanoutResult{}, fmt.Errorf("publish: %w", err)
		}
		if f.windowOpen.Load() {
			published++
		}
	}
	// Deliveries of the window's last publishes may still be on the way.
	time.Sleep(time.Second) // a bounded grace period of the benchmark, not synchronisation
	f.windowOpen.Store(false)
	cpu1 := f.cpu()
	for _, c := range f.subs {
		_ = c.conn.Close()
	}
	wg.Wait()
	res := FanoutResult{
		Server: f.name, Subscribers: len(f.subs), OfferedPerSec: f.o.Rate, Published: published,
		Deliveries: f.deliveries.Load(), Expected: published * int64(len(f.subs)),
		Latency: func() LatencySummary { s := f.hist.Snapshot(); return s.Summary() }(),
	}
	res.DeliveriesPerSec = float64(res.Deliveries) / f.o.Duration.Seconds()
	if f.pid > 0 {
		res.ServerCPUSeconds = (cpu1 - cpu0).Seconds()
		if res.Deliveries > 0 {
			res.ServerCPUPerDelivM = res.ServerCPUSeconds * 1e6 / float64(res.Deliveries)
		}
	}
	return res, nil
}

func (f *fanRun) cpu() time.Duration {
	if f.pid <= 0 {
		return 0
	}
	d, _ := ProcCPU(f.pid)
	return d
}

func (f *fanRun) progress(format string, a ...any) {
	if f.o.Progress != nil {
		fmt.Fprintf(f.o.Progress, "fanout %s: "+format+"\n", append([]any{f.name}, a...)...)
	}
}

// stampAfter reads the decimal number after key in msg.
func stampAfter(msg []byte, key string) (int64, bool) {
	i := bytes.Index(msg, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := msg[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	v, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return v, err == nil
}

func fanoutChat(ctx context.Context, o FanoutOptions) (FanoutResult, error) {
	tg, err := ParseTarget(o.ChatURL)
	if err != nil {
		return FanoutResult{}, err
	}
	api := NewAPI(tg.HTTP, nil, 64)
	defer api.Close()
	f := &fanRun{o: o, name: "chat", pid: o.ChatPID}
	prefix := randomPrefix()
	const password = "fanout-password-1"
	nUsers := (o.Subscribers + o.PerUser - 1) / o.PerUser
	f.progress("signing up %d users", nUsers+1)
	_, pubToken, err := api.Signup(ctx, prefix+"pub", password)
	if err != nil {
		return FanoutResult{}, err
	}
	names := make([]string, nUsers)
	tokens := make([]string, nUsers)
	var firstErr error
	var mu sync.Mutex
	parallel(ctx, nUsers, 16, func(i int) {
		names[i] = fmt.Sprintf("%ss%d", prefix, i)
		_, tok, err := api.Signup(ctx, names[i], password)
		mu.Lock()
		defer mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		tokens[i] = tok
	})
	if firstErr != nil {
		return FanoutResult{}, firstErr
	}
	conv, err := api.CreateGroup(ctx, pubToken, "fanout", names)
	if err != nil {
		return FanoutResult{}, err
	}
	f.progress("connecting %d subscribers", o.Subscribers)
	f.subs = make([]*fanConn, o.Subscribers)
	parallel(ctx, o.Subscribers, 64, func(i int) {
		c, err := dialFan(ctx, tg.WS, map[string]string{"Authorization": "Bearer " + tokens[i/o.PerUser]})
		if err == nil {
			_, err = c.next(nil) // hello
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		f.subs[i] = c
	})
	if firstErr != nil {
		return FanoutResult{}, firstErr
	}
	// The gateway limits each connection to SendRate requests a second
	// (20 by default), so the publisher spreads its sends over enough
	// connections (devices of one user) to stay at 10/s each.
	pubs := make([]*fanConn, max(1, int(o.Rate/10+0.999)))
	for k := range pubs {
		pub, err := dialFan(ctx, tg.WS, map[string]string{"Authorization": "Bearer " + pubToken})
		if err != nil {
			return FanoutResult{}, err
		}
		defer pub.conn.Close()
		go func() { // acks and the publisher's own copies: read and dropped
			for {
				if _, err := pub.next(nil); err != nil {
					return
				}
			}
		}()
		pubs[k] = pub
	}
	f.publish = func(i int, sent int64) error {
		return pubs[i%len(pubs)].write([]byte(`{"type":"send","conversation":"` + conv + `","client_id":"f` + strconv.Itoa(i) + `","body":"t` + strconv.FormatInt(sent, 10) + `"}`))
	}
	f.stampOf = func(msg []byte) (int64, bool) {
		if !bytes.HasPrefix(msg, []byte(`{"type":"message"`)) {
			return 0, false
		}
		return stampAfter(msg, `"body":"t`)
	}
	f.progress("publishing %.0f/s for %v after %v of warm-up", o.Rate, o.Duration, o.Warmup)
	return f.run(ctx)
}

func fanoutCentrifugo(ctx context.Context, o FanoutOptions) (FanoutResult, error) {
	tg, err := ParseTarget(o.CentrifugoURL)
	if err != nil {
		return FanoutResult{}, err
	}
	wsURL := "ws://" + tg.Addr.String() + "/connection/websocket"
	f := &fanRun{o: o, name: "centrifugo", pid: o.CentrifugoPID}
	connect := func() (*fanConn, error) {
		c, err := dialFan(ctx, wsURL, nil)
		if err != nil {
			return nil, err
		}
		if err := c.write([]byte(`{"id":1,"connect":{}}`)); err != nil {
			return nil, err
		}
		if err := c.write([]byte(`{"id":2,"subscribe":{"channel":"` + o.Channel + `"}}`)); err != nil {
			return nil, err
		}
		for {
			msg, err := c.next(nil)
			if err != nil {
				return nil, err
			}
			if bytes.Contains(msg, []byte(`"error"`)) {
				return nil, fmt.Errorf("centrifugo refused: %s", msg)
			}
			if bytes.Contains(msg, []byte(`"id":2`)) {
				return c, nil
			}
		}
	}
	f.progress("connecting %d subscribers", o.Subscribers)
	f.subs = make([]*fanConn, o.Subscribers)
	var firstErr error
	var mu sync.Mutex
	parallel(ctx, o.Subscribers, 64, func(i int) {
		c, err := connect()
		mu.Lock()
		defer mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		f.subs[i] = c
	})
	if firstErr != nil {
		return FanoutResult{}, firstErr
	}
	pub, err := dialFan(ctx, wsURL, nil)
	if err != nil {
		return FanoutResult{}, err
	}
	defer pub.conn.Close()
	if err := pub.write([]byte(`{"id":1,"connect":{}}`)); err != nil {
		return FanoutResult{}, err
	}
	go func() {
		for {
			msg, err := pub.next(nil)
			if err != nil {
				return
			}
			if bytes.Equal(bytes.TrimSpace(msg), []byte("{}")) {
				_ = pub.write([]byte("{}")) // Centrifugo's application-level ping
			}
		}
	}()
	f.publish = func(i int, sent int64) error {
		return pub.write([]byte(`{"id":` + strconv.Itoa(i+10) + `,"publish":{"channel":"` + o.Channel + `","data":{"t":` + strconv.FormatInt(sent, 10) + `}}}`))
	}
	f.stampOf = func(msg []byte) (int64, bool) {
		if !bytes.Contains(msg, []byte(`"pub"`)) {
			return 0, false
		}
		return stampAfter(msg, `"t":`)
	}
	f.progress("publishing %.0f/s for %v after %v of warm-up", o.Rate, o.Duration, o.Warmup)
	return f.run(ctx)
}
