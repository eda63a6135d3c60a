package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits that keep every run bounded whatever the flags say.
const (
	MaxConns    = 1_000_000
	MaxRate     = 1_000_000
	MaxDuration = 24 * time.Hour
	MaxProcs    = 64
)

// ErrBadOptions wraps every validation failure of Options.
var ErrBadOptions = errors.New("bad options")

// Options configure one run. Zero values take the defaults in Defaults.
type Options struct {
	Scenario string // idle, chat, broadcast or storm
	URL      string // server base URL; loopback only

	Conns   int     // connections (idle, chat); members (broadcast)
	Users   int     // idle: distinct users the connections log in as (default Conns)
	Group   int     // chat: members per conversation
	Senders int     // chat, broadcast: sending connections
	Rate    float64 // chat, broadcast: total messages per second

	Duration    time.Duration // hold (idle) or send (chat, broadcast) time
	BodySize    int           // bytes per message body (at least the marker)
	Password    string
	Prefix      string // username prefix (default random)
	CreateBatch int    // broadcast: members named in the create call; the rest are added one by one

	SignupConcurrency  int
	ConnectConcurrency int
	ConnectTimeout     time.Duration
	DrainTimeout       time.Duration
	MaxInflight        int // per sending connection; beyond it sends are skipped and counted
	Timeout            time.Duration
	NoSpread           bool // do not spread source addresses over 127.0.0.2–254

	StormAt     time.Duration // storm: when every connection is dropped (0: only by the server)
	StormJitter time.Duration // storm: reconnects spread over this (the client's backoff jitter)

	Procs      int    // worker processes; >1 re-executes Exe
	Exe        string // binary for --procs children (default os.Executable)
	GatewayPID int    // read the gateway's VmRSS and CPU from /proc
	// MetricsURL is the base URL of the gateway's /metrics: its metrics
	// address (chat --metrics-addr), not the public port. "" means URL
	// (a server that serves both on one port).
	MetricsURL string

	UsersFile string // reuse users (and tokens) saved here by earlier runs; save new ones

	JSONPath string    // also write the JSON report here
	Progress io.Writer // progress lines (nil: quiet)
}

// Defaults fills the zero fields of o.
func (o *Options) Defaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&o.BodySize, 64)
	def(&o.SignupConcurrency, 32)
	def(&o.ConnectConcurrency, 256)
	def(&o.MaxInflight, 1000)
	def(&o.CreateBatch, 999)
	def(&o.Procs, 1)
	if o.Group == 0 {
		o.Group = 10
	}
	if o.Password == "" {
		o.Password = "loadtest-password"
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 15 * time.Second
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 5 * time.Second
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = o.Duration + 30*time.Minute
	}
}

// Validate checks o after Defaults.
func (o *Options) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadOptions, fmt.Sprintf(format, a...))
	}
	if _, err := ParseTarget(o.URL); err != nil {
		return fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	switch o.Scenario {
	case "idle", "chat", "broadcast", "storm":
	default:
		return bad("unknown scenario %q (idle, chat, broadcast, storm)", o.Scenario)
	}
	if o.Conns < 1 || o.Conns > MaxConns {
		return bad("connections/members must be 1..%d", MaxConns)
	}
	if o.Duration <= 0 || o.Duration > MaxDuration {
		return bad("duration must be in (0, %v]", MaxDuration)
	}
	if o.Procs < 1 || o.Procs > MaxProcs || o.Procs > o.Conns {
		return bad("procs must be 1..%d and at most the connections", MaxProcs)
	}
	if o.Scenario != "idle" {
		if o.Rate <= 0 || o.Rate > MaxRate {
			return bad("rate must be in (0, %d]", MaxRate)
		}
		if o.Senders < 1 {
			return bad("senders must be at least 1")
		}
	}
	if o.Scenario == "storm" && (o.StormAt < 0 || o.StormAt > o.Duration || o.StormJitter < 0 || o.StormJitter > time.Minute) {
		return bad("storm-at must be within the duration, storm-jitter 0..1m")
	}
	if (o.Scenario == "chat" || o.Scenario == "storm") && (o.Group < 2 || o.Group > o.Conns) {
		return bad("group size must be 2..conns")
	}
	if o.Scenario == "broadcast" && o.Conns < 2 {
		return bad("broadcast needs at least 2 members")
	}
	if o.BodySize < 1 || o.BodySize > 4000 {
		return bad("body size must be 1..4000")
	}
	if o.Users < 0 || o.ConnectConcurrency < 1 || o.SignupConcurrency < 1 || o.MaxInflight < 1 {
		return bad("concurrency and in-flight limits must be positive")
	}
	return nil
}

// progressEvery calls f every d until the returned stop is called (which
// waits for the ticker goroutine). Without a Progress writer it does nothing.
func (o *Options) progressEvery(d time.Duration, f func()) (stop func()) {
	if o.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}

func (o *Options) logf(format string, a ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "chatload: "+format+"\n", a...)
	}
}

// Run performs the scenario and returns its report. It never sends traffic
// to anything but loopback and stops by itself (Duration, DrainTimeout and
// the overall Timeout bound it).
func Run(ctx context.Context, o Options) (*Report, error) {
	o.Defaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	tg, _ := ParseTarget(o.URL)
	nofile, err := RaiseNoFile()
	if err != nil {
		o.logf("cannot raise the open-file limit: %v", err)
	}
	perProc := (o.Conns + o.Procs - 1) / o.Procs
	rep := &Report{Scenario: o.Scenario, URL: tg.HTTP, StartedAt: time.Now().UTC(), Procs: o.Procs,
		Conns: o.Conns, Group: o.Group, Senders: o.Senders, Rate: o.Rate, DurationS: o.Duration.Seconds(), BodySize: o.BodySize}
	if uint64(perProc)+64 > nofile && nofile > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d connections per process but only %d open files allowed: use --procs", perProc, nofile))
	}

	var src = SourceAddrs(tg.Addr.Addr())
	if o.NoSpread {
		src = nil
	}
	api := NewAPI(tg.HTTP, NewSpreader(src, o.ConnectTimeout).DialContext, o.SignupConcurrency)
	defer api.Close()

	cpu0, wall0 := cpuNow()
	o.logf("setting up %s: %d connections", o.Scenario, o.Conns)
	plan, setup, err := buildPlan(ctx, &o, tg, api)
	rep.Setup = setup
	if err != nil {
		return rep, fmt.Errorf("setup: %w", err)
	}
	rep.Senders = plan.Senders
	parentUsage := []ProcUsage{usageSince("parent", "setup", cpu0, wall0)}
	o.logf("setup done: %d users reused, %d signed up in %.1fs, %d groups; connecting %d", setup.Reused, setup.SignupOK, setup.SignupSeconds, setup.Groups, len(plan.Conns))

	metricsBase := tg.HTTP
	if o.MetricsURL != "" {
		metricsBase = strings.TrimSuffix(o.MetricsURL, "/")
	}
	gw := newGatewayProbe(o.GatewayPID, api, metricsBase)
	gw.before(ctx)

	var res Result
	if o.Procs == 1 {
		res, err = runLocal(ctx, &o, plan, gw)
	} else {
		res, err = runChildren(ctx, &o, plan, gw)
	}
	res.Processes = append(parentUsage, res.Processes...)
	rep.fill(res, gw)
	if cerr := ctx.Err(); cerr != nil {
		rep.Interrupted = true
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the run was stopped before its end (%v): the figures cover only the part that ran", cerr))
		if err == nil {
			err = cerr
		}
	}
	if o.JSONPath != "" {
		if werr := rep.WriteJSON(o.JSONPath); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	return rep, err
}

// runLocal runs every connection in this process.
func runLocal(ctx context.Context, o *Options, plan *Plan, gw *gatewayProbe) (Result, error) {
	w := newWorker(plan, 0, len(plan.Conns), "worker 0")
	w.connect(ctx)
	o.logf("connected %d, failed %d", w.connOK.Load(), w.connFailed.Load())
	gw.after(ctx, w.connOK.Load())
	start := time.Now().Add(100 * time.Millisecond)
	gw.runStart()
	w.run(ctx, start)
	gw.runEnd()
	w.closeAll()
	return w.result(), ctx.Err()
}

// Child protocol (stdout/stdin lines): the child prints "READY", the parent
// answers "GO <unix ns start>", the child prints "RESULT <json>" and exits.
// A closed stdin makes the child stop early.

// runChildren spreads the plan's connections over o.Procs child processes.
func runChildren(ctx context.Context, o *Options, plan *Plan, gw *gatewayProbe) (Result, error) {
	exe := o.Exe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return Result{}, fmt.Errorf("find own binary for --procs: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "chatload-plan-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	planPath := filepath.Join(dir, "plan.json")
	b, err := json.Marshal(plan)
	if err != nil {
		return Result{}, err
	}
	if err := os.WriteFile(planPath, b, 0o600); err != nil {
		return Result{}, err
	}

	type child struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		lines  chan string
		result Result
		err    error
	}
	n := len(plan.Conns)
	children := make([]*child, o.Procs)
	var readers sync.WaitGroup
	defer readers.Wait()
	// Whatever happens, the children started are told to stop (stdin
	// closed) and waited for.
	defer func() {
		for _, c := range children {
			if c != nil {
				c.stdin.Close()
				for range c.lines {
				}
				_ = c.cmd.Wait()
			}
		}
	}()
	for i := range children {
		lo, hi := i*n/o.Procs, (i+1)*n/o.Procs
		cmd := exec.Command(exe, "worker", "--plan", planPath, "--lo", strconv.Itoa(lo), "--hi", strconv.Itoa(hi), "--role", "worker "+strconv.Itoa(i))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return Result{}, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return Result{}, err
		}
		if err := cmd.Start(); err != nil {
			return Result{}, fmt.Errorf("start worker %d: %w", i, err)
		}
		c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 4)}
		children[i] = c
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer close(c.lines)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64<<10), 256<<20)
			for sc.Scan() {
				c.lines <- sc.Text()
			}
		}()
	}
	expectCtx := func(ctx context.Context, c *child, prefix string) (string, error) {
		for {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case line, ok := <-c.lines:
				if !ok {
					return "", fmt.Errorf("worker exited before %s", prefix)
				}
				if rest, found := strings.CutPrefix(line, prefix); found {
					return strings.TrimSpace(rest), nil
				}
			}
		}
	}
	expect := func(c *child, prefix string) (string, error) { return expectCtx(ctx, c, prefix) }
	var total Result
	var connected int64
	for i, c := range children {
		line, err := expect(c, "READY")
		if err != nil {
			return total, fmt.Errorf("worker %d: %w", i, err)
		}
		k, _ := strconv.ParseInt(line, 10, 64)
		connected += k
	}
	o.logf("%d workers connected %d", len(children), connected)
	gw.after(ctx, connected)
	start := time.Now().Add(200 * time.Millisecond)
	gw.runStart()
	for _, c := range children {
		fmt.Fprintf(c.stdin, "GO %d\n", start.UnixNano())
	}
	// When the run is cancelled, the children are told to stop (stdin
	// closed) and still report what they measured, within a grace period.
	resCtx, resCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer resCancel()
	stopWatch := context.AfterFunc(ctx, func() {
		for _, c := range children {
			c.stdin.Close()
		}
		t := time.AfterFunc(time.Minute, resCancel)
		context.AfterFunc(resCtx, func() { t.Stop() })
	})
	defer stopWatch()
	var errs []error
	for i, c := range children {
		line, err := expectCtx(resCtx, c, "RESULT")
		if err == nil {
			err = json.Unmarshal([]byte(line), &c.result)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", i, err))
			continue
		}
		if i == 0 {
			gw.runEnd()
		}
		total.Merge(c.result)
	}
	return total, errors.Join(errs...)
}

// RunWorker is the body of a --procs child: it runs connections [lo, hi)
// of the plan file, speaking the READY/GO/RESULT protocol on in and out.
func RunWorker(ctx context.Context, planPath string, lo, hi int, role string, in io.Reader, out io.Writer) error {
	b, err := os.ReadFile(planPath)
	if err != nil {
		return err
	}
	var plan Plan
	if err := json.Unmarshal(b, &plan); err != nil {
		return fmt.Errorf("read plan: %w", err)
	}
	if lo < 0 || hi > len(plan.Conns) || lo > hi {
		return fmt.Errorf("%w: connection range [%d,%d) outside the plan", ErrBadOptions, lo, hi)
	}
	if _, err := ParseTarget(plan.HTTP); err != nil {
		return err
	}
	_, _ = RaiseNoFile()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	cmds := make(chan string, 1)
	var stdinWG sync.WaitGroup
	stdinWG.Add(1)
	go func() {
		defer stdinWG.Done()
		defer cancel() // stdin closed: the parent is gone or wants us to stop
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case cmds <- sc.Text():
			default:
			}
		}
	}()
	w := newWorker(&plan, lo, hi, role)
	w.connect(ctx)
	fmt.Fprintf(out, "READY %d\n", w.connOK.Load())
	var start time.Time
	select {
	case <-ctx.Done():
	case line := <-cmds:
		if rest, ok := strings.CutPrefix(line, "GO "); ok {
			ns, _ := strconv.ParseInt(rest, 10, 64)
			start = time.Unix(0, ns)
		}
	}
	if !start.IsZero() {
		w.run(ctx, start)
	}
	w.closeAll()
	res := w.result()
	b, err = json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "RESULT %s\n", b)
	// The reader goroutine ends when the parent closes our stdin; a stdin
	// that never closes must not keep us, so it is not waited for when the
	// input is os.Stdin (the process exits anyway).
	if in != os.Stdin {
		stdinWG.Wait()
	}
	return nil
}
