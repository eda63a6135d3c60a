package main

// Helpers of the real-cluster test (cluster_test.go): child processes
// (three nats-server, two chat gateway, two chat store, all built once per
// run) whose output goes to files, a chat client over
// github.com/coder/websocket that reconnects to another gateway, catches up
// and resends, and the checks against Cassandra (gocql) and the HTTP
// history API. Names carry a "cl" prefix: the package's end-to-end tests
// live beside them.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gocql/gocql"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	clSecret   = "cluster-test-secret-0123456789abcdef"
	clPassword = "correct horse battery staple"
	clDrain    = 3 * time.Second
	// clWait bounds one request or one expected event.
	clWait = 15 * time.Second
)

// ---- processes ----

// clProc is one child process in a process group of its own; its stdout
// and stderr go to a file in the test's temporary directory.
type clProc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // Wait's result, set before done is closed
	exited  time.Time
}

// childEnv is the test's environment without CHAT_* variables: every flag
// of chat has an environment twin, and a developer's CHAT_NATS must not
// leak into the cluster under test.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHAT_") {
			out = append(out, kv)
		}
	}
	return out
}

func startProc(dir, name, bin string, args ...string) (*clProc, error) {
	f, err := os.CreateTemp(dir, strings.ReplaceAll(name, "/", "_")+"-*.log")
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child holds its own descriptor
	fmt.Fprintf(f, "# %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &clProc{name: name, logPath: f.Name(), cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.err, p.exited = err, time.Now()
		close(p.done)
	}()
	return p, nil
}

// signal signals the process group.
func (p *clProc) signal(sig syscall.Signal) error {
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

func (p *clProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill SIGKILLs the process group and waits for the process. Safe twice.
func (p *clProc) kill() {
	if p.running() {
		_ = p.signal(syscall.SIGKILL)
	}
	<-p.done
}

// waitExit waits up to d for the process to exit.
func (p *clProc) waitExit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// tail returns the last n lines of the process's output.
func (p *clProc) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort returns a port that was free on host a moment ago. It is
// probed below the kernel's ephemeral range: a port taken from
// 127.0.0.1:0 and released can be handed out again at once as the source
// port of an outgoing connection (the NATS routes dial each other), which
// then keeps the server from binding it.
func freePort(t *testing.T, host string) int {
	t.Helper()
	lo, hi := 20000, 32000
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if start, err := strconv.Atoi(f[0]); err == nil && start > 11000 {
				lo, hi = start-11000, start-1000
			}
		}
	}
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatalf("no free port on %s in %d..%d", host, lo, hi)
	return 0
}

// ---- the cluster ----

// clNode is one server of the cluster that can be started again with the
// same arguments (and so the same addresses and data).
type clNode struct {
	name string
	addr string // HTTP address: gateway API, store ops, NATS monitoring
	bin  string
	args []string
	proc *clProc
	runs int
}

type clusterEnv struct {
	t        *testing.T
	dir      string
	chatBin  string
	natsBin  string
	cass     string // host:port of Cassandra, or several, comma separated
	keyspace string
	natsURLs string
	nats     []*clNode
	gws      []*clNode
	stores   []*clNode
	http     *http.Client

	// rf is the keyspace's replication factor (1); storeConsistency the
	// stores' --consistency ("ONE"; empty: the store's default); checkCons
	// the consistency of the test's own reads (One).
	rf               int
	storeConsistency string
	checkCons        gocql.Consistency

	migrated bool

	mu    sync.Mutex
	procs []*clProc // every process ever started, for the logs
}

func newClusterEnv(t *testing.T, cass string) *clusterEnv {
	dir := t.TempDir()
	e := &clusterEnv{
		t: t, dir: dir, cass: cass,
		chatBin:  filepath.Join(dir, "chat"),
		natsBin:  filepath.Join(dir, "nats-server"),
		keyspace: fmt.Sprintf("chat_cluster_%d", time.Now().UnixNano()),
		http:     &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}, Timeout: 30 * time.Second},
	}
	e.rf, e.storeConsistency, e.checkCons = 1, "ONE", gocql.One
	// Registered after TempDir, so it runs before the directory goes.
	t.Cleanup(func() {
		e.stopAll()
		e.http.CloseIdleConnections()
		if e.migrated {
			e.dropKeyspace()
		}
		if t.Failed() {
			e.mu.Lock()
			procs := slices.Clone(e.procs)
			e.mu.Unlock()
			for _, p := range procs {
				state := "running"
				if !p.running() {
					state = fmt.Sprintf("exited %v", p.err)
				}
				t.Logf("---- %s (%s), last lines of its output:\n%s", p.name, state, p.tail(25))
			}
		}
	})
	return e
}

// build compiles chat and nats-server (at go.mod's version) once per run.
func (e *clusterEnv) build() {
	t := e.t
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, args := range [][]string{
		{"build", "-o", e.chatBin, "."},
		{"build", "-o", e.natsBin, "github.com/nats-io/nats-server/v2"},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.Command("go", args...).CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (e *clusterEnv) start(n *clNode) {
	e.t.Helper()
	n.runs++
	p, err := startProc(e.dir, fmt.Sprintf("%s#%d", n.name, n.runs), n.bin, n.args...)
	if err != nil {
		e.t.Fatal(err)
	}
	n.proc = p
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
}

func (e *clusterEnv) stopAll() {
	e.mu.Lock()
	procs := slices.Clone(e.procs)
	e.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
}

// startNATS writes three nats-server configurations clustered with
// JetStream and starts them.
func (e *clusterEnv) startNATS() {
	t := e.t
	t.Helper()
	type ports struct{ client, cluster, http int }
	ps := make([]ports, 3)
	for i := range ps {
		ps[i] = ports{freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")}
	}
	var urls []string
	for i, p := range ps {
		name := fmt.Sprintf("n%d", i+1)
		var routes []string
		for j, q := range ps {
			if j != i {
				routes = append(routes, fmt.Sprintf("    nats-route://127.0.0.1:%d", q.cluster))
			}
		}
		store := filepath.Join(e.dir, "js-"+name)
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream {
  store_dir: %q
  max_memory_store: 256MB
  max_file_store: 2GB
}
cluster {
  name: chat-test
  listen: 127.0.0.1:%d
  routes: [
%s
  ]
}
`, name, p.client, p.http, store, p.cluster, strings.Join(routes, "\n"))
		path := filepath.Join(e.dir, name+".conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		n := &clNode{name: "nats-" + name, addr: fmt.Sprintf("127.0.0.1:%d", p.http), bin: e.natsBin, args: []string{"-c", path}}
		e.nats = append(e.nats, n)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", p.client))
	}
	e.natsURLs = strings.Join(urls, ",")
	for _, n := range e.nats {
		e.start(n)
	}
	for _, n := range e.nats {
		e.waitNATS(n, 60*time.Second)
	}
}

// waitNATS waits until a NATS node is healthy (JetStream current, in
// contact with a meta leader) and knows the meta leader.
func (e *clusterEnv) waitNATS(n *clNode, d time.Duration) {
	e.t.Helper()
	e.poll(n.name+" healthy with a JetStream meta leader", d, func() error {
		for _, m := range e.nats {
			if !m.proc.running() {
				return fmt.Errorf("%s exited: %v", m.name, m.proc.err)
			}
		}
		status, body, err := e.get("http://" + n.addr + "/healthz")
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("/healthz %d %s", status, body)
		}
		_, body, err = e.get("http://" + n.addr + "/jsz")
		if err != nil {
			return err
		}
		var jsz struct {
			Meta *struct {
				Leader string `json:"leader"`
				Size   int    `json:"cluster_size"`
			} `json:"meta_cluster"`
		}
		if err := json.Unmarshal(body, &jsz); err != nil {
			return fmt.Errorf("/jsz: %w", err)
		}
		if jsz.Meta == nil || jsz.Meta.Leader == "" {
			return fmt.Errorf("no meta leader yet: %s", body)
		}
		return nil
	})
}

// migrate runs chat migrate on a fresh keyspace (safe off the test's
// goroutine: it returns its error).
func (e *clusterEnv) migrate() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.chatBin, "migrate", "--cassandra", e.cass, "--keyspace", e.keyspace,
		"--replication-factor", strconv.Itoa(e.rf), "--wait", "2m")
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("chat migrate: %w\n%s", err, out)
	}
	e.migrated = true
	return nil
}

// dropKeyspace removes the run's keyspace, best effort.
func (e *clusterEnv) dropKeyspace() {
	s, err := e.cql("")
	if err != nil {
		e.t.Logf("drop keyspace %s: %v", e.keyspace, err)
		return
	}
	defer s.Close()
	if err := s.Query("DROP KEYSPACE IF EXISTS " + e.keyspace).Exec(); err != nil {
		e.t.Logf("drop keyspace %s: %v", e.keyspace, err)
	}
}

func (e *clusterEnv) cql(keyspace string) (*gocql.Session, error) {
	c := gocql.NewCluster(strings.Split(e.cass, ",")...)
	c.Keyspace = keyspace
	c.Consistency = e.checkCons
	// Schema changes (DROP KEYSPACE) take long on a loaded machine.
	c.Timeout = time.Minute
	c.ConnectTimeout = 10 * time.Second
	c.NumConns = 1
	s, err := c.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("cassandra %s: %w", e.cass, err)
	}
	return s, nil
}

func (e *clusterEnv) addGateway(name, host string) *clNode {
	addr := fmt.Sprintf("%s:%d", host, freePort(e.t, host))
	n := &clNode{name: name, addr: addr, bin: e.chatBin, args: []string{"gateway",
		"--addr", addr, "--metrics-addr", host + ":0", "--nats", e.natsURLs, "--jwt-secret", clSecret, "--drain", clDrain.String(),
		"--stream-replicas", "3", "--log-level", "info",
		// The tests sign up and log in from one address far more than the throttles allow.
		"--throttle-exempt", "0.0.0.0/0,::/0"}}
	e.gws = append(e.gws, n)
	return n
}

func (e *clusterEnv) addStore(name, host string) *clNode {
	addr := fmt.Sprintf("%s:%d", host, freePort(e.t, host))
	n := &clNode{name: name, addr: addr, bin: e.chatBin, args: []string{"store",
		"--addr", addr, "--metrics-addr", host + ":0", "--nats", e.natsURLs, "--cassandra", e.cass, "--keyspace", e.keyspace,
		"--stream-replicas", "3", "--log-level", "info"}}
	if e.storeConsistency != "" {
		n.args = append(n.args, "--consistency", e.storeConsistency)
	}
	e.stores = append(e.stores, n)
	return n
}

// waitReady polls a node's /readyz until 200.
func (e *clusterEnv) waitReady(n *clNode, d time.Duration) {
	e.t.Helper()
	e.poll(n.name+" /readyz 200", d, func() error {
		if !n.proc.running() {
			return fmt.Errorf("%s exited: %v", n.name, n.proc.err)
		}
		status, body, err := e.get("http://" + n.addr + "/readyz")
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
}

// startTogether starts nodes at once, as a deployment does, and expects
// each to be ready within d. One that is not is a failure; it is then
// killed and started again (as Kubernetes would restart it, at its own
// moment: one at a time) so that the scenarios after it still run.
func (e *clusterEnv) startTogether(nodes []*clNode, d time.Duration) {
	t := e.t
	t.Helper()
	began := time.Now()
	for _, n := range nodes {
		e.start(n)
	}
	_ = pollUntil(d, 100*time.Millisecond, func() error {
		for _, n := range nodes {
			if status, _, err := e.get("http://" + n.addr + "/readyz"); err != nil || status != http.StatusOK {
				return errors.New(n.name)
			}
		}
		return nil
	})
	for _, n := range nodes {
		status, body, err := e.get("http://" + n.addr + "/readyz")
		if err == nil && status == http.StatusOK {
			continue
		}
		state := "still running"
		if !n.proc.running() {
			state = fmt.Sprintf("exited (%v)", n.proc.err)
		}
		t.Errorf("%s not ready %v after starting together with the others: %s; /readyz %d %s %v; output:\n%s",
			n.name, time.Since(began).Round(time.Millisecond), state, status, body, err, n.proc.tail(6))
		// Started again one at a time: together they may collide again.
		n.proc.kill()
		e.start(n)
		e.waitReady(n, 2*time.Minute)
	}
}

// poll calls check until it returns nil, failing the test after d.
func (e *clusterEnv) poll(what string, d time.Duration, check func() error) {
	e.t.Helper()
	if err := pollUntil(d, 100*time.Millisecond, check); err != nil {
		e.t.Fatalf("%s: not after %v: %v", what, d, err)
	}
}

// pollUntil calls check every step until it returns nil or d has passed;
// it returns check's last error.
func pollUntil(d, step time.Duration, check func() error) error {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(step)
	defer tick.Stop()
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		<-tick.C
	}
}

func (e *clusterEnv) get(u string) (int, []byte, error) {
	resp, err := e.http.Get(u)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// api calls the HTTP API of the gateway at addr; out is filled on 2xx.
func (e *clusterEnv) api(addr, method, path, token string, body, out any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+addr+"/api/v1"+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, b, err
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, b, fmt.Errorf("%s %s: %w in %s", method, path, err, b)
		}
	}
	return resp.StatusCode, b, nil
}

func (e *clusterEnv) mustAPI(addr, method, path, token string, body, out any, want int) {
	e.t.Helper()
	status, b, err := e.api(addr, method, path, token, body, out)
	if err != nil || status != want {
		e.t.Fatalf("%s %s on %s: %d %s (%v), want %d", method, path, addr, status, b, err, want)
	}
}

// ---- protocol objects ----

type clUser struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

type clAccount struct {
	User  clUser `json:"user"`
	Token string `json:"token"`
}

type clMsg struct {
	ID           string `json:"id"`
	Conversation string `json:"conversation"`
	Sender       string `json:"sender"`
	Body         string `json:"body"`
	ClientID     string `json:"client_id"`
}

type clConv struct {
	ID string `json:"id"`
}

type clPage struct {
	Messages   []clMsg `json:"messages"`
	NextBefore *string `json:"next_before"`
	NextAfter  *string `json:"next_after"`
}

type clFrame struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Code    string          `json:"code"`
	Message json.RawMessage `json:"message"`
	raw     []byte
}

func parseID(s string) uint64 {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// ---- the chat client ----

// clSend is one message a client sends; it is resent with the same
// client_id until acked.
type clSend struct {
	conv, clientID, body string
	first                time.Time // first issued
	acked                bool
	msgID                string
	ackedAt              time.Time
	attempts             int
	lastIssue            time.Time
	retryAt              time.Time // after an error answer
}

// clConnState is one WebSocket connection of a client.
type clConnState struct {
	ws    *websocket.Conn
	gw    int
	hello chan clFrame
	dead  chan struct{} // the reader stopped
	code  websocket.StatusCode
	err   error
	live  map[string]uint64 // newest message frame per conversation, for the order check
}

// clClose is how a connection of a client ended.
type clClose struct {
	gw   int
	code websocket.StatusCode
	at   time.Time
	err  error
}

// clReconnect describes one reconnect.
type clReconnect struct {
	from, to  int
	took      time.Duration
	caughtUp  int // messages history after= returned
	resent    int // unacked sends resent
	probes    int // acked sends resent on purpose
	attempts  int
	startedAt time.Time
}

// clClient is a chat user's client: it sends at a steady pace while told
// to, keeps every message it learns of (ack, message frame, history), and
// on losing its connection dials another gateway, reads hello, catches up
// with history after= its newest known ID, then resends every unacked
// send and, on purpose, its two newest acked sends per conversation, with
// their client_ids (each must come back as the first message).
type clClient struct {
	name  string
	acct  clAccount
	env   *clusterEnv
	convs []string

	sending  atomic.Bool
	interval atomic.Int64 // between sends, nanoseconds

	mu         sync.Mutex
	cur        *clConnState
	sends      []*clSend
	byReq      map[string]*clSend
	probeReqs  map[string]bool
	replies    map[string]chan clFrame
	known      map[string]map[string]bool
	newest     map[string]uint64
	errs       []string
	notes      []string
	sendErrs   map[string]int
	closes     []clClose
	reconnects []clReconnect
	probeAcks  int
	reqSeq     int
	n          int

	stop    chan struct{}
	done    chan struct{}
	readers sync.WaitGroup
}

func newClClient(e *clusterEnv, name string, acct clAccount, convs []string) *clClient {
	c := &clClient{
		name: name, acct: acct, env: e, convs: convs,
		byReq: map[string]*clSend{}, probeReqs: map[string]bool{}, replies: map[string]chan clFrame{},
		known: map[string]map[string]bool{}, newest: map[string]uint64{}, sendErrs: map[string]int{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	for _, cv := range convs {
		c.known[cv] = map[string]bool{}
	}
	c.interval.Store(int64(200 * time.Millisecond))
	return c
}

func (c *clClient) errorf(format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, c.name+": "+fmt.Sprintf(format, a...))
}

func (c *clClient) nextReq(prefix string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqSeq++
	return fmt.Sprintf("%s-%s-%d", c.name, prefix, c.reqSeq)
}

// dial connects to gateway gw and waits for hello.
func (c *clClient) dial(gw int) (*clConnState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), clWait)
	defer cancel()
	u := "ws://" + c.env.gws[gw].addr + "/ws?token=" + url.QueryEscape(c.acct.Token)
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.env.http})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %d)", c.env.gws[gw].name, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial %s: %w", c.env.gws[gw].name, err)
	}
	ws.SetReadLimit(16 << 20)
	cs := &clConnState{ws: ws, gw: gw, hello: make(chan clFrame, 1), dead: make(chan struct{}), live: map[string]uint64{}}
	c.readers.Add(1)
	go c.read(cs)
	select {
	case f := <-cs.hello:
		if f.Type != "hello" {
			ws.CloseNow()
			return nil, fmt.Errorf("%s: first frame %s, want hello", c.env.gws[gw].name, f.raw)
		}
		return cs, nil
	case <-cs.dead:
		return nil, fmt.Errorf("%s: closed before hello: %v", c.env.gws[gw].name, cs.err)
	case <-ctx.Done():
		ws.CloseNow()
		return nil, fmt.Errorf("%s: no hello: %w", c.env.gws[gw].name, ctx.Err())
	}
}

func (c *clClient) read(cs *clConnState) {
	defer c.readers.Done()
	first := true
	for {
		typ, b, err := cs.ws.Read(context.Background())
		if err == nil && typ != websocket.MessageText {
			err = fmt.Errorf("server sent a %v frame", typ)
		}
		if err != nil {
			cs.code, cs.err = websocket.CloseStatus(err), err
			c.mu.Lock()
			c.closes = append(c.closes, clClose{gw: cs.gw, code: cs.code, at: time.Now(), err: err})
			c.mu.Unlock()
			cs.ws.CloseNow()
			close(cs.dead)
			return
		}
		var f clFrame
		if jerr := json.Unmarshal(b, &f); jerr != nil {
			c.errorf("frame is not JSON: %s", b)
			continue
		}
		f.raw = b
		if first {
			first = false
			cs.hello <- f
			continue
		}
		c.handle(cs, f)
	}
}

// learn records a message the client now knows. Catch-up starts after
// the newest message that came in a message or history frame, not after
// the newest ack: an ack can overtake an older message of another member
// still on its way through the sender's gateway, and history after= the
// acked ID would skip that one for good.
func (c *clClient) learn(m clMsg, fromAck bool) {
	if c.known[m.Conversation] == nil {
		return
	}
	c.known[m.Conversation][m.ID] = true
	if id := parseID(m.ID); !fromAck && id > c.newest[m.Conversation] {
		c.newest[m.Conversation] = id
	}
}

func (c *clClient) handle(cs *clConnState, f clFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch f.Type {
	case "ack":
		s := c.byReq[f.ID]
		if s == nil {
			c.errs = append(c.errs, fmt.Sprintf("%s: ack for an unknown request: %s", c.name, f.raw))
			return
		}
		var m clMsg
		if err := json.Unmarshal(f.Message, &m); err != nil || m.ID == "" {
			c.errs = append(c.errs, fmt.Sprintf("%s: bad ack %s", c.name, f.raw))
			return
		}
		if m.ClientID != s.clientID || m.Conversation != s.conv || m.Body != s.body || m.Sender != c.acct.User.ID {
			c.errs = append(c.errs, fmt.Sprintf("%s: ack of client_id %s is not the first message sent with it (body %q): %s",
				c.name, s.clientID, s.body, f.raw))
		}
		if c.probeReqs[f.ID] {
			c.probeAcks++
		}
		if s.acked {
			if m.ID != s.msgID {
				c.errs = append(c.errs, fmt.Sprintf("%s: client_id %s acked twice with different messages %s and %s (stored twice)",
					c.name, s.clientID, s.msgID, m.ID))
			}
		} else {
			s.acked, s.msgID, s.ackedAt = true, m.ID, time.Now()
		}
		c.learn(m, true)
	case "message":
		var m clMsg
		if err := json.Unmarshal(f.Message, &m); err != nil || m.ID == "" {
			c.errs = append(c.errs, fmt.Sprintf("%s: bad message frame %s", c.name, f.raw))
			return
		}
		id := parseID(m.ID)
		if id <= cs.live[m.Conversation] {
			c.errs = append(c.errs, fmt.Sprintf("%s: message %s of %s after %d on one connection to %s: not in ID order",
				c.name, m.ID, m.Conversation, cs.live[m.Conversation], c.env.gws[cs.gw].name))
		}
		cs.live[m.Conversation] = max(id, cs.live[m.Conversation])
		c.learn(m, false)
	case "history":
		if ch := c.replies[f.ID]; ch != nil {
			delete(c.replies, f.ID)
			ch <- f
		}
	case "error":
		if ch := c.replies[f.ID]; ch != nil {
			delete(c.replies, f.ID)
			ch <- f
			return
		}
		if s := c.byReq[f.ID]; s != nil {
			c.sendErrs[f.Code]++
			if !s.acked {
				s.retryAt = time.Now().Add(500 * time.Millisecond)
			}
			return
		}
		c.errs = append(c.errs, fmt.Sprintf("%s: unexpected error frame %s", c.name, f.raw))
	}
}

// connect makes the first connection, before run.
func (c *clClient) connect(gw int) error {
	cs, err := c.dial(gw)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.cur = cs
	c.mu.Unlock()
	return nil
}

// write writes one frame; a failed write closes the connection so that
// its reader ends and the client reconnects.
func (c *clClient) write(cs *clConnState, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		c.errorf("marshal: %v", err)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), clWait)
	defer cancel()
	if err := cs.ws.Write(ctx, websocket.MessageText, b); err != nil {
		cs.ws.CloseNow()
		return false
	}
	return true
}

// issue (re)sends s on cs under a new request ID.
func (c *clClient) issue(cs *clConnState, s *clSend, body string, probe bool) {
	id := c.nextReq("send")
	c.mu.Lock()
	c.byReq[id] = s
	if probe {
		c.probeReqs[id] = true
	}
	s.attempts++
	s.lastIssue = time.Now()
	s.retryAt = time.Time{}
	c.mu.Unlock()
	c.write(cs, map[string]string{"type": "send", "id": id, "conversation": s.conv, "client_id": s.clientID, "body": body})
}

func (c *clClient) run() {
	defer close(c.done)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastSend time.Time
	for {
		c.mu.Lock()
		cs := c.cur
		c.mu.Unlock()
		select {
		case <-c.stop:
			return
		case <-cs.dead:
			if !c.reconnect(cs) {
				return
			}
		case now := <-tick.C:
			if c.sending.Load() && now.Sub(lastSend) >= time.Duration(c.interval.Load()) {
				lastSend = now
				c.mu.Lock()
				c.n++
				s := &clSend{conv: c.convs[c.n%len(c.convs)], clientID: fmt.Sprintf("%s-%d", c.name, c.n), first: now}
				s.body = fmt.Sprintf("%s says %d in %s", c.name, c.n, s.conv)
				c.sends = append(c.sends, s)
				c.mu.Unlock()
				c.issue(cs, s, s.body, false)
			}
			c.retryDue(cs, now)
		}
	}
}

// retryDue resends sends answered with an error, and sends unanswered for
// clWait on a connection that stayed up (a note, not a failure: the
// protocol allows resending; the final checks catch a duplicate).
func (c *clClient) retryDue(cs *clConnState, now time.Time) {
	var due []*clSend
	c.mu.Lock()
	for _, s := range c.sends {
		if s.acked {
			continue
		}
		if !s.retryAt.IsZero() && now.After(s.retryAt) {
			due = append(due, s)
		} else if s.retryAt.IsZero() && now.Sub(s.lastIssue) > clWait {
			c.notes = append(c.notes, fmt.Sprintf("%s: send %s unanswered for %v on %s; resent", c.name, s.clientID, clWait, c.env.gws[cs.gw].name))
			due = append(due, s)
		}
	}
	c.mu.Unlock()
	for _, s := range due {
		c.issue(cs, s, s.body, false)
	}
}

// reconnect dials the other gateway(s) until one answers, catches up and
// resends. It returns false when the client is stopped.
func (c *clClient) reconnect(old *clConnState) bool {
	rc := clReconnect{from: old.gw, startedAt: time.Now()}
	// Where catch-up starts is fixed now: once a new connection is up,
	// its live message frames move newest on past what was missed.
	c.mu.Lock()
	from := maps.Clone(c.newest)
	c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		select {
		case <-c.stop:
			return false
		default:
		}
		if attempt > 0 {
			t := time.NewTimer(200 * time.Millisecond)
			select {
			case <-c.stop:
				t.Stop()
				return false
			case <-t.C:
			}
		}
		rc.attempts++
		gw := (old.gw + 1 + attempt) % len(c.env.gws)
		cs, err := c.dial(gw)
		if err != nil {
			continue
		}
		n, err := c.catchUp(cs, from)
		if err != nil {
			c.mu.Lock()
			c.notes = append(c.notes, fmt.Sprintf("%s: catch-up on %s: %v", c.name, c.env.gws[gw].name, err))
			c.mu.Unlock()
			cs.ws.CloseNow()
			continue
		}
		rc.to, rc.caughtUp = gw, n
		var unacked, probes []*clSend
		c.mu.Lock()
		c.cur = cs
		per := map[string]int{}
		for i := len(c.sends) - 1; i >= 0; i-- {
			s := c.sends[i]
			switch {
			case !s.acked:
				unacked = append(unacked, s)
			case per[s.conv] < 2:
				per[s.conv]++
				probes = append(probes, s)
			}
		}
		c.mu.Unlock()
		slices.Reverse(unacked)
		for _, s := range unacked {
			c.issue(cs, s, s.body, false)
		}
		for _, s := range probes {
			c.issue(cs, s, "resent on purpose: "+s.body, true)
		}
		rc.resent, rc.probes, rc.took = len(unacked), len(probes), time.Since(rc.startedAt)
		c.mu.Lock()
		c.reconnects = append(c.reconnects, rc)
		c.mu.Unlock()
		return true
	}
}

// catchUp asks history after= the newest ID known at the disconnect for
// every conversation, page by page, and returns how many messages came.
func (c *clClient) catchUp(cs *clConnState, from map[string]uint64) (int, error) {
	total := 0
	for _, conv := range c.convs {
		after := strconv.FormatUint(from[conv], 10)
		for page := 0; ; page++ {
			if page > 1000 {
				return total, errors.New("history does not end")
			}
			var p clPage
			if err := c.historyReq(cs, conv, after, &p); err != nil {
				return total, err
			}
			c.mu.Lock()
			for _, m := range p.Messages {
				c.learn(m, false)
			}
			c.mu.Unlock()
			total += len(p.Messages)
			if p.NextAfter == nil {
				break
			}
			after = *p.NextAfter
		}
	}
	return total, nil
}

func (c *clClient) historyReq(cs *clConnState, conv, after string, out *clPage) error {
	for try := 0; ; try++ {
		id := c.nextReq("hist")
		ch := make(chan clFrame, 1)
		c.mu.Lock()
		c.replies[id] = ch
		c.mu.Unlock()
		if !c.write(cs, map[string]any{"type": "history", "id": id, "conversation": conv, "after": after, "limit": 200}) {
			return errors.New("write failed")
		}
		t := time.NewTimer(clWait)
		select {
		case f := <-ch:
			t.Stop()
			if f.Type == "history" {
				return json.Unmarshal(f.raw, out)
			}
			if f.Code != "unavailable" || try >= 20 {
				return fmt.Errorf("history of %s after %s: %s", conv, after, f.raw)
			}
		case <-cs.dead:
			t.Stop()
			return fmt.Errorf("closed during catch-up: %v", cs.err)
		case <-t.C:
			return fmt.Errorf("no answer to history %s", id)
		}
		t2 := time.NewTimer(500 * time.Millisecond)
		<-t2.C
	}
}

// close stops the client and waits for its goroutines. Safe twice.
func (c *clClient) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
	c.mu.Lock()
	cs := c.cur
	c.mu.Unlock()
	if cs != nil {
		_ = cs.ws.Close(websocket.StatusNormalClosure, "")
		cs.ws.CloseNow()
	}
	c.readers.Wait()
}

// gateway is the index of the gateway the client is connected to now.
func (c *clClient) gateway() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.gw
}

// unacked returns copies of the sends not acked yet, taken under the
// client's lock: the run loop keeps updating the originals (a retry counts
// an attempt).
func (c *clClient) unacked() []clSend {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []clSend
	for _, s := range c.sends {
		if !s.acked {
			out = append(out, *s)
		}
	}
	return out
}

// takeErrs returns and forgets the errors and notes recorded so far.
func (c *clClient) takeErrs() (errs, notes []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	errs, notes = c.errs, c.notes
	c.errs, c.notes = nil, nil
	return errs, notes
}

// clAcked is an acked message as its sender knows it.
type clAcked struct {
	sender, clientID, msgID string
}

// ackedByConv gathers every acked message of every client, by conversation
// and message ID.
func ackedByConv(clients []*clClient) map[string]map[string]clAcked {
	out := map[string]map[string]clAcked{}
	for _, c := range clients {
		c.mu.Lock()
		for _, s := range c.sends {
			if !s.acked {
				continue
			}
			if out[s.conv] == nil {
				out[s.conv] = map[string]clAcked{}
			}
			out[s.conv][s.msgID] = clAcked{sender: c.acct.User.ID, clientID: s.clientID, msgID: s.msgID}
		}
		c.mu.Unlock()
	}
	return out
}

// ---- checks ----

// checkCassandra compares the messages table with the acked messages:
// every acked message exactly once (one row per conversation and message
// ID, one per sender and client_id, the acked ID for the client_id) and
// nothing else.
func checkCassandra(s *gocql.Session, want map[string]map[string]clAcked) error {
	return checkCassandraExcept(s, want, nil)
}

// checkCassandraExcept is checkCassandra leaving out the rows of the
// conversations in skip (a scenario's own, checked by that scenario).
func checkCassandraExcept(s *gocql.Session, want map[string]map[string]clAcked, skip map[string]bool) error {
	type key struct{ conv, a, b string }
	byID := map[key]int{}
	byClient := map[key][]string{}
	total := 0
	iter := s.Query("SELECT conversation_id, message_id, sender_id, client_id FROM messages").PageSize(2000).Iter()
	var conv, client string
	var id, sender int64
	for iter.Scan(&conv, &id, &sender, &client) {
		if skip[conv] {
			continue
		}
		ids := strconv.FormatUint(uint64(id), 10)
		byID[key{conv, ids, ""}]++
		k := key{conv, strconv.FormatUint(uint64(sender), 10), client}
		byClient[k] = append(byClient[k], ids)
		total++
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("select messages: %w", err)
	}
	var problems []string
	nWant := 0
	for conv, msgs := range want {
		for id, a := range msgs {
			nWant++
			switch n := byID[key{conv, id, ""}]; n {
			case 1:
			case 0:
				problems = append(problems, fmt.Sprintf("missing %s/%s (%s)", conv, id, a.clientID))
			default:
				problems = append(problems, fmt.Sprintf("%d rows for %s/%s", n, conv, id))
			}
			if got := byClient[key{conv, a.sender, a.clientID}]; len(got) > 1 || len(got) == 1 && got[0] != id {
				problems = append(problems, fmt.Sprintf("client_id %s of %s stored as %v, acked as %s", a.clientID, conv, got, id))
			}
		}
	}
	for k, n := range byID {
		if _, ok := want[k.conv][k.a]; !ok {
			problems = append(problems, fmt.Sprintf("row %s/%s (×%d) was never acked", k.conv, k.a, n))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		if len(problems) > 12 {
			problems = append(problems[:12], fmt.Sprintf("... %d more", len(problems)-12))
		}
		return fmt.Errorf("%d rows, %d acked messages: %s", total, nWant, strings.Join(problems, "; "))
	}
	return nil
}

// walkHistory reads a conversation's whole history through the HTTP API,
// after=0 forwards (oldest first) or from the newest backwards.
func (e *clusterEnv) walkHistory(addr, token, conv string, forward bool, limit int) ([]clMsg, int, error) {
	var out []clMsg
	cur := "0"
	pages := 0
	for ; pages < 2000; pages++ {
		q := fmt.Sprintf("?limit=%d&after=%s", limit, cur)
		if !forward {
			q = fmt.Sprintf("?limit=%d", limit)
			if pages > 0 {
				q += "&before=" + cur
			}
		}
		var p clPage
		status, b, err := e.api(addr, "GET", "/conversations/"+conv+"/messages"+q, token, nil, &p)
		if err != nil {
			return out, pages, err
		}
		if status != http.StatusOK {
			return out, pages, fmt.Errorf("GET history %s%s: %d %s", conv, q, status, b)
		}
		out = append(out, p.Messages...)
		next := p.NextAfter
		if !forward {
			next = p.NextBefore
		}
		if next == nil {
			return out, pages + 1, nil
		}
		cur = *next
	}
	return out, pages, errors.New("history does not end")
}

// checkHistory walks a conversation's history both ways and compares it
// with the acked messages: all of them, each once, strictly increasing
// (decreasing backwards), nothing else.
func (e *clusterEnv) checkHistory(addr, token, conv string, want map[string]clAcked) (int, error) {
	sorted := make([]uint64, 0, len(want))
	for id := range want {
		sorted = append(sorted, parseID(id))
	}
	slices.Sort(sorted)
	pages := 0
	for _, forward := range []bool{true, false} {
		limit := 200
		if !forward {
			limit = 37 // many pages: every page boundary is a chance of a hole
		}
		msgs, n, err := e.walkHistory(addr, token, conv, forward, limit)
		pages += n
		if err != nil {
			return pages, err
		}
		dir := "after"
		if !forward {
			dir = "before"
			slices.Reverse(msgs)
		}
		var prev uint64
		for i, m := range msgs {
			id := parseID(m.ID)
			if i > 0 && id <= prev {
				return pages, fmt.Errorf("%s: history (%s) not strictly ordered: %d then %d", conv, dir, prev, id)
			}
			prev = id
			if _, ok := want[m.ID]; !ok {
				return pages, fmt.Errorf("%s: history (%s) holds %s (%s), never acked", conv, dir, m.ID, m.ClientID)
			}
		}
		if len(msgs) != len(sorted) {
			missing := 0
			have := map[uint64]bool{}
			for _, m := range msgs {
				have[parseID(m.ID)] = true
			}
			first := uint64(0)
			for _, id := range sorted {
				if !have[id] {
					missing++
					if first == 0 {
						first = id
					}
				}
			}
			return pages, fmt.Errorf("%s: history (%s) has %d messages, %d acked; %d missing (first %d)", conv, dir, len(msgs), len(sorted), missing, first)
		}
	}
	return pages, nil
}

// streamLeader asks NATS which server leads the message stream.
func (e *clusterEnv) streamLeader() (string, error) {
	nc, err := nats.Connect(e.natsURLs, nats.Timeout(5*time.Second))
	if err != nil {
		return "", err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "CHAT_MSGS")
	if err != nil {
		return "", err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", errors.New("stream has no leader")
	}
	return info.Cluster.Leader, nil
}
