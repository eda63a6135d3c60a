package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Plan is everything a worker needs to run its share of a scenario; the
// parent makes it (signing users up and creating conversations) and hands
// it to its --procs children as a file.
type Plan struct {
	Scenario string      `json:"scenario"`
	HTTP     string      `json:"http"`
	WS       string      `json:"ws"`
	Spread   bool        `json:"spread"`
	Users    []PlanUser  `json:"users"`
	Groups   []PlanGroup `json:"groups"`
	Conns    []PlanConn  `json:"conns"`
	Senders  int         `json:"senders"`
	Rate     float64     `json:"rate"`
	Duration Dur         `json:"duration"`
	BodySize int         `json:"body_size"`

	ConnectConcurrency int `json:"connect_concurrency"`
	ConnectTimeout     Dur `json:"connect_timeout"`
	DrainTimeout       Dur `json:"drain_timeout"`
	MaxInflight        int `json:"max_inflight"`

	// The storm scenario: when every connection is dropped (0: only the
	// server drops them) and the reconnects' random spread.
	StormAt     Dur `json:"storm_at,omitempty"`
	StormJitter Dur `json:"storm_jitter,omitempty"`
}

// Dur is a time.Duration that reads and writes JSON as "1.5s".
type Dur time.Duration

// MarshalJSON implements json.Marshaler.
func (d Dur) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Dur) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Dur(v)
	return err
}

// PlanUser is a signed-up user.
type PlanUser struct {
	Name  string `json:"name"`
	ID    string `json:"id"`
	Token string `json:"token"`
}

// PlanGroup is a conversation and the connections that are its members.
type PlanGroup struct {
	ID      string `json:"id"`
	Members []int  `json:"members"`
}

// PlanConn is one connection: whose it is, which group it sends into (if
// any), and its sender number k in the global Schedule (-1: not a sender).
type PlanConn struct {
	User   int `json:"user"`
	Group  int `json:"group"`
	Sender int `json:"sender"`
}

// worker runs the connections [lo, hi) of a plan.
type worker struct {
	plan   *Plan
	lo, hi int
	role   string
	dial   func(context.Context, string, string) (net.Conn, error)

	conns  []*wsConn // index i-lo; nil when the connect failed
	readWG sync.WaitGroup

	mu          sync.Mutex
	connErrs    map[string]int64
	dropReasons map[string]int64
	sendErrs    map[string]int64

	connectLat, ackLat, e2eLat Histogram
	frames                     map[string]*atomic.Int64 // fixed key set: no lock to count
	framesOther                atomic.Int64

	connOK, connFailed                  atomic.Int64
	dropped                             atomic.Int64
	sent, acked, writeErrs, skipped     atomic.Int64
	delivered, selfDelivered, foreign   atomic.Int64
	expected                            atomic.Int64
	firstDeliv, lastDeliv, lastActivity atomic.Int64
	maxLag                              atomic.Int64

	res        Result // phase timings, filled as the worker goes
	stormSt    stormState
	stormEnded atomic.Bool
}

var frameTypes = []string{"hello", "ack", "message", "history", "read", "typing", "presence", "conversation", "error", "pong"}

func newWorker(p *Plan, lo, hi int, role string) *worker {
	w := &worker{plan: p, lo: lo, hi: hi, role: role,
		conns:    make([]*wsConn, hi-lo),
		connErrs: map[string]int64{}, dropReasons: map[string]int64{}, sendErrs: map[string]int64{},
		frames: make(map[string]*atomic.Int64, len(frameTypes)),
	}
	for _, t := range frameTypes {
		w.frames[t] = new(atomic.Int64)
	}
	w.res.Workers = 1
	tg, err := ParseTarget(p.HTTP)
	var src = SourceAddrs(tg.Addr.Addr())
	if err != nil || !p.Spread {
		src = nil
	}
	w.dial = NewSpreader(src, time.Duration(p.ConnectTimeout)).DialContext
	return w
}

func (w *worker) count(m map[string]int64, key string) {
	w.mu.Lock()
	m[key]++
	w.mu.Unlock()
}

// connect opens the worker's connections with bounded parallelism and
// returns when each has received hello or failed.
func (w *worker) connect(ctx context.Context) {
	cpu0, wall0 := cpuNow()
	w.res.ConnectStartNs = wall0.UnixNano()
	idx := make(chan int)
	var wg sync.WaitGroup
	for range max(1, min(w.plan.ConnectConcurrency, w.hi-w.lo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				w.connectOne(ctx, i)
			}
		}()
	}
	for i := w.lo; i < w.hi && ctx.Err() == nil; i++ {
		select {
		case idx <- i:
		case <-ctx.Done():
		}
	}
	close(idx)
	wg.Wait()
	w.res.ConnectEndNs = time.Now().UnixNano()
	w.res.ConnectAttempted = int64(w.hi - w.lo)
	w.res.Processes = append(w.res.Processes, usageSince(w.role, "connect", cpu0, wall0))
}

func (w *worker) connectOne(ctx context.Context, i int) {
	pc := w.plan.Conns[i]
	t0 := time.Now()
	c, err := dialWS(ctx, i, w.plan.WS, w.plan.Users[pc.User].Token, w.dial, time.Duration(w.plan.ConnectTimeout))
	if err != nil {
		w.connFailed.Add(1)
		w.count(w.connErrs, ErrorKey(err))
		return
	}
	w.connectLat.Record(time.Since(t0))
	w.connOK.Add(1)
	w.frames["hello"].Add(1)
	w.conns[i-w.lo] = c
	w.readWG.Add(1)
	go w.readLoop(c)
}

func (w *worker) readLoop(c *wsConn) {
	defer w.readWG.Done()
	defer close(c.done)
	for {
		op, p, err := c.readMessage()
		if err != nil {
			if !c.closing.Load() && w.plan.Scenario == "storm" && c.catchup == nil && !w.stormEnded.Load() {
				// The server dropped it (a gateway died): it comes back
				// as in the storm.
				w.stormDrop(context.Background(), c.idx-w.lo, c)
			} else if !c.closing.Load() {
				w.dropped.Add(1)
				reason := ErrorKey(err)
				if errors.Is(err, errClosed) {
					reason = "close_" + strconv.Itoa(int(c.closeCode.Load()))
				}
				w.count(w.dropReasons, reason)
			}
			c.conn.Close()
			return
		}
		if op == ws.OpText {
			w.onFrame(c, p)
		}
	}
}

func (w *worker) onFrame(c *wsConn, p []byte) {
	now := time.Now().UnixNano()
	w.lastActivity.Store(now)
	typ, id, _ := topLevel(p)
	if n, ok := w.frames[string(typ)]; ok {
		n.Add(1)
	} else {
		w.framesOther.Add(1)
	}
	if c.catchup != nil && len(id) > 0 && (string(typ) == "history" || string(typ) == "error") {
		code := ""
		if string(typ) == "error" {
			var e struct {
				Code string `json:"code"`
			}
			_ = json.Unmarshal(p, &e)
			code = e.Code + "_"
		}
		select {
		case c.catchup <- code:
		default:
		}
		if string(typ) == "history" {
			return
		}
	}
	switch string(typ) {
	case "ack":
		if sentNs, err := strconv.ParseInt(string(id), 10, 64); err == nil {
			w.ackLat.Record(time.Duration(now - sentNs))
		}
		w.acked.Add(1)
		c.inflight.Add(-1)
		if g := w.plan.Conns[c.idx].Group; g >= 0 {
			w.expected.Add(int64(len(w.plan.Groups[g].Members) - 1))
		}
	case "message":
		sentNs, sender, ok := parseMarker(p)
		switch {
		case !ok:
			w.foreign.Add(1)
		case sender == c.idx:
			w.selfDelivered.Add(1)
		default:
			w.delivered.Add(1)
			w.e2eLat.Record(time.Duration(now - sentNs))
			w.firstDeliv.CompareAndSwap(0, now)
			w.lastDeliv.Store(now)
		}
	case "error":
		var e struct {
			ID   string `json:"id"`
			Code string `json:"code"`
		}
		_ = json.Unmarshal(p, &e)
		if e.Code == "" {
			e.Code = "unknown"
		}
		w.count(w.sendErrs, e.Code)
		if e.ID != "" {
			c.inflight.Add(-1)
		}
	}
	if cap(p) > 16<<10 {
		c.shrink()
	}
}

// run sends (if the plan has senders) from start for the plan's duration,
// then waits for the last acks and deliveries, at most DrainTimeout.
func (w *worker) run(ctx context.Context, start time.Time) {
	cpu0, wall0 := cpuNow()
	sched := Schedule{Start: start, Duration: time.Duration(w.plan.Duration), Rate: w.plan.Rate, Senders: w.plan.Senders}
	w.res.SendStartNs = start.UnixNano()
	end := start.Add(sched.Duration)
	var wg sync.WaitGroup
	if w.plan.Senders > 0 && w.plan.Rate > 0 {
		for i, c := range w.conns {
			pc := w.plan.Conns[w.lo+i]
			if c == nil || pc.Sender < 0 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.sendLoop(ctx, c, pc, sched)
			}()
		}
	}
	if w.plan.Scenario == "storm" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.storm(ctx, start)
		}()
	}
	waitUntil(ctx, end)
	wg.Wait()
	w.stormSt.wg.Wait()
	w.stormEnded.Store(true)
	w.stormSt.wg.Wait() // a drop that raced with the end
	w.res.SendEndNs = time.Now().UnixNano()
	w.drain(ctx)
	w.res.Processes = append(w.res.Processes, usageSince(w.role, "run", cpu0, wall0))
}

func (w *worker) sendLoop(ctx context.Context, c *wsConn, pc PlanConn, sched Schedule) {
	conv, _ := json.Marshal(w.plan.Groups[pc.Group].ID)
	var buf []byte
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for n := int64(0); ; n++ {
		at, ok := sched.At(pc.Sender, n)
		if !ok {
			return
		}
		if d := time.Until(at); d > 0 {
			t.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-c.done:
				return
			case <-t.C:
			}
		} else {
			// Behind schedule: send at once (no coordinated omission of the
			// backlog), and remember how far behind the generator fell.
			lag := int64(-d)
			for old := w.maxLag.Load(); lag > old && !w.maxLag.CompareAndSwap(old, lag); old = w.maxLag.Load() {
			}
			select {
			case <-ctx.Done():
				return
			case <-c.done:
				return
			default:
			}
		}
		if c.inflight.Load() >= int64(w.plan.MaxInflight) {
			w.skipped.Add(1)
			continue
		}
		now := time.Now().UnixNano()
		buf = appendSend(buf[:0], now, conv, c.idx, n, now, w.plan.BodySize)
		c.inflight.Add(1)
		if err := c.write(ws.OpText, buf); err != nil {
			c.inflight.Add(-1)
			w.writeErrs.Add(1)
			return
		}
		w.sent.Add(1)
	}
}

// drain waits until every send is answered and deliveries have gone quiet
// for a moment, or DrainTimeout.
func (w *worker) drain(ctx context.Context) {
	deadline := time.Now().Add(time.Duration(w.plan.DrainTimeout))
	const quiet = 300 * time.Millisecond
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		var inflight int64
		for _, c := range w.conns {
			if c != nil {
				select {
				case <-c.done:
				default:
					inflight += c.inflight.Load()
				}
			}
		}
		if inflight <= 0 && time.Since(time.Unix(0, w.lastActivity.Load())) > quiet {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// closeAll closes every connection (bounded parallelism) and waits for the
// reader goroutines.
func (w *worker) closeAll() {
	var held int64
	for _, c := range w.conns {
		if c == nil {
			continue
		}
		select {
		case <-c.done:
		default:
			held++
		}
	}
	w.res.HeldAtEnd = held
	ch := make(chan *wsConn)
	var wg sync.WaitGroup
	for range max(1, min(w.plan.ConnectConcurrency, len(w.conns))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				c.close(2 * time.Second)
			}
		}()
	}
	for _, c := range w.conns {
		if c != nil {
			ch <- c
		}
	}
	close(ch)
	wg.Wait()
	w.readWG.Wait()
	// Counted once no reader runs, so that acked + errors + unacked = sent
	// (acks that arrive while closing still count as acks).
	for _, c := range w.conns {
		if c != nil {
			w.res.Unacked += max(0, c.inflight.Load())
		}
	}
}

// result collects the worker's measurements; call after closeAll.
func (w *worker) result() Result {
	r := w.res
	w.mu.Lock()
	r.ConnectErrors = copyNonEmpty(w.connErrs)
	r.DropReasons = copyNonEmpty(w.dropReasons)
	r.SendErrors = copyNonEmpty(w.sendErrs)
	w.mu.Unlock()
	r.ConnectOK, r.ConnectFailed = w.connOK.Load(), w.connFailed.Load()
	r.ConnectLatency = w.connectLat.Snapshot()
	r.Dropped = w.dropped.Load()
	r.Sent, r.Acked, r.WriteErrors, r.Skipped = w.sent.Load(), w.acked.Load(), w.writeErrs.Load(), w.skipped.Load()
	r.MaxPaceLagNs = w.maxLag.Load()
	r.Delivered, r.SelfDelivered, r.Foreign = w.delivered.Load(), w.selfDelivered.Load(), w.foreign.Load()
	r.Expected = w.expected.Load()
	r.FirstDelivNs, r.LastDelivNs = w.firstDeliv.Load(), w.lastDeliv.Load()
	r.AckLatency, r.E2ELatency = w.ackLat.Snapshot(), w.e2eLat.Snapshot()
	r.Storm = w.stormResult()
	r.FramesIn = map[string]int64{}
	for k, v := range w.frames {
		if n := v.Load(); n > 0 {
			r.FramesIn[k] = n
		}
	}
	if n := w.framesOther.Load(); n > 0 {
		r.FramesIn["other"] = n
	}
	return r
}

func copyNonEmpty(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func waitUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-tm.C:
	}
}

func cpuNow() (time.Duration, time.Time) {
	u, s := CPUTime()
	return u + s, time.Now()
}

func usageSince(role, phase string, cpu0 time.Duration, wall0 time.Time) ProcUsage {
	cpu1, wall1 := cpuNow()
	wall := wall1.Sub(wall0).Seconds()
	cpu := (cpu1 - cpu0).Seconds()
	u := ProcUsage{Role: role, Phase: phase, WallS: round3(wall), CPUS: round3(cpu), MaxRSSMB: round3(float64(MaxRSS()) / (1 << 20))}
	if wall > 0 {
		u.Cores = round3(cpu / wall)
	}
	return u
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }
