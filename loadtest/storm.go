package loadtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/gobwas/ws"
)

// The storm scenario (issue 11): conversations as in chat, with traffic;
// then, StormAt into the run, every connection is dropped at once, as when
// a gateway dies, and comes back like the web client does: after a random
// wait (its backoff's jitter, up to StormJitter) it reconnects, takes its
// hello and asks its catch-up page (history after the newest message it
// may have seen). The figures: how long until every connection had both,
// how the reconnects and catch-ups went (errors by kind: a store that
// timed out answers "unavailable"). Against a cluster, kill a gateway
// instead (--storm-at 0 leaves the drops to the server): every connection
// the server drops reconnects the same way.
//
//	chatload storm --url http://127.0.0.1:8080 --conns 20000 --group 10 --rate 200 \
//	    --duration 60s --storm-at 20s --storm-jitter 5s --procs 2 --users-file users.json

// StormResult is what the storm phase measured.
type StormResult struct {
	Dropped     int64            `json:"dropped"`     // connections the storm (or the server) dropped
	Reconnected int64            `json:"reconnected"` // had hello again
	CaughtUp    int64            `json:"caught_up"`   // had their catch-up page too
	Failed      map[string]int64 `json:"failed,omitempty"`
	StartNs     int64            `json:"start_ns"`  // the first drop
	LastNs      int64            `json:"last_ns"`   // the last catch-up
	Reconnect   HistSnapshot     `json:"reconnect"` // drop to hello
	CatchUp     HistSnapshot     `json:"catch_up"`  // drop to the catch-up page
}

// Merge adds o into r.
func (r *StormResult) Merge(o StormResult) {
	r.Dropped += o.Dropped
	r.Reconnected += o.Reconnected
	r.CaughtUp += o.CaughtUp
	addMap(&r.Failed, o.Failed)
	r.StartNs = minNonZero(r.StartNs, o.StartNs)
	r.LastNs = max(r.LastNs, o.LastNs)
	r.Reconnect.Merge(o.Reconnect)
	r.CatchUp.Merge(o.CatchUp)
}

// stormState is a worker's storm bookkeeping.
type stormState struct {
	mu        sync.Mutex
	failed    map[string]int64
	res       StormResult
	reconnect Histogram
	catchUp   Histogram
	wg        sync.WaitGroup
}

func (s *stormState) fail(kind string) {
	s.mu.Lock()
	if s.failed == nil {
		s.failed = map[string]int64{}
	}
	s.failed[kind]++
	s.mu.Unlock()
}

// storm drops every connection at start+StormAt (unless StormAt is 0) and
// waits until each dropped one reconnected and caught up, or the storm's
// deadline (StormJitter + ConnectTimeout + 30 s after the drop).
func (w *worker) storm(ctx context.Context, start time.Time) {
	at := time.Duration(w.plan.StormAt)
	if at > 0 {
		waitUntil(ctx, start.Add(at))
		if ctx.Err() != nil {
			return
		}
		for i, c := range w.conns {
			if c != nil {
				w.stormDrop(ctx, i, c)
			}
		}
	}
}

// stormDrop closes c abruptly (no close frame: the gateway is gone) and
// brings connection i back after a jittered wait.
func (w *worker) stormDrop(ctx context.Context, i int, c *wsConn) {
	st := &w.stormSt
	now := time.Now()
	st.mu.Lock()
	st.res.Dropped++
	st.res.StartNs = minNonZero(st.res.StartNs, now.UnixNano())
	st.mu.Unlock()
	c.closing.Store(true)
	_ = c.conn.Close()
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		w.stormReturn(ctx, i, now)
	}()
}

// stormReturn reconnects connection i (retrying with backoff until the
// storm's deadline) and asks its catch-up page.
func (w *worker) stormReturn(ctx context.Context, i int, dropAt time.Time) {
	st := &w.stormSt
	jitter := time.Duration(w.plan.StormJitter)
	deadline := dropAt.Add(jitter + time.Duration(w.plan.ConnectTimeout) + 30*time.Second)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if jitter > 0 {
		waitUntil(ctx, dropAt.Add(time.Duration(rand.Int64N(int64(jitter)))))
	}
	pc := w.plan.Conns[w.lo+i]
	backoff := 250 * time.Millisecond
	var c *wsConn
	for {
		var err error
		c, err = dialWS(ctx, w.lo+i, w.plan.WS, w.plan.Users[pc.User].Token, w.dial, time.Duration(w.plan.ConnectTimeout))
		if err == nil {
			break
		}
		st.fail("reconnect_" + ErrorKey(err))
		if ctx.Err() != nil {
			st.fail("gave_up")
			return
		}
		waitUntil(ctx, time.Now().Add(backoff/2+time.Duration(rand.Int64N(int64(backoff)))))
		backoff = min(2*backoff, 5*time.Second)
	}
	st.reconnect.Record(time.Since(dropAt))
	st.mu.Lock()
	st.res.Reconnected++
	st.mu.Unlock()
	c.catchup = make(chan string, 1)
	w.mu.Lock()
	w.conns[i] = c
	w.mu.Unlock()
	w.readWG.Add(1)
	go w.readLoop(c)
	if pc.Group < 0 {
		st.mu.Lock()
		st.res.CaughtUp++
		st.mu.Unlock()
		return
	}
	// The newest message a client may have seen: about the drop's time.
	after := chat.FirstID(dropAt.Add(-time.Second))
	req := fmt.Sprintf(`{"type":"history","id":"storm-%d","conversation":%s,"after":"%d","limit":50}`,
		w.lo+i, strconv.Quote(w.plan.Groups[pc.Group].ID), after)
	if err := c.write(ws.OpText, []byte(req)); err != nil {
		st.fail("catchup_write")
		return
	}
	select {
	case code := <-c.catchup:
		if code != "" {
			st.fail("catchup_" + code)
			return
		}
	case <-ctx.Done():
		st.fail("catchup_timeout")
		return
	}
	now := time.Now()
	st.catchUp.Record(now.Sub(dropAt))
	st.mu.Lock()
	st.res.CaughtUp++
	st.res.LastNs = max(st.res.LastNs, now.UnixNano())
	st.mu.Unlock()
}

// stormResult collects the storm's figures; call after the storm's wait.
func (w *worker) stormResult() *StormResult {
	st := &w.stormSt
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.res.Dropped == 0 {
		return nil
	}
	r := st.res
	r.Failed = copyNonEmpty(st.failed)
	r.Reconnect = st.reconnect.Snapshot()
	r.CatchUp = st.catchUp.Snapshot()
	return &r
}

// StormReport is the storm in the report.
type StormReport struct {
	Dropped      int64            `json:"dropped"`
	Reconnected  int64            `json:"reconnected"`
	CaughtUp     int64            `json:"caught_up"`
	Failed       map[string]int64 `json:"failed,omitempty"`
	AllCaughtUpS float64          `json:"all_caught_up_s"` // first drop to the last catch-up
	Reconnect    LatencySummary   `json:"reconnect"`
	CatchUp      LatencySummary   `json:"catch_up"`
}
