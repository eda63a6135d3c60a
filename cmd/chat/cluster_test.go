package main

// TestCluster runs the chat as it is deployed, on loopback: three
// nats-server processes clustered with JetStream, one Cassandra node, two
// `chat gateway` and two `chat store` processes. Users on different
// gateways chat directly and in a group; then, one fault at a time while
// messages flow, every acked message must be in Cassandra exactly once and
// come back in order from history.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("the real cluster takes minutes; skipped with -short")
	}
	cass := os.Getenv("CHAT_TEST_CASSANDRA")
	if cass == "" {
		t.Skip("set CHAT_TEST_CASSANDRA (schema/cassandra.sh start)")
	}
	if _, _, err := net.SplitHostPort(cass); err != nil {
		cass = net.JoinHostPort(cass, "9042")
	}
	if c, err := net.DialTimeout("tcp", cass, 10*time.Second); err != nil {
		t.Fatalf("CHAT_TEST_CASSANDRA=%s is set but unreachable: %v", cass, err)
	} else {
		c.Close()
	}
	began := time.Now()
	e := newClusterEnv(t, cass)
	e.build()
	t.Logf("built chat and nats-server in %v", time.Since(began).Round(time.Millisecond))

	// The migration and the NATS cluster start side by side.
	t1 := time.Now()
	migrated := make(chan error, 1)
	go func() { migrated <- e.migrate() }()
	e.startNATS()
	t.Logf("NATS cluster with a JetStream meta leader in %v", time.Since(t1).Round(time.Millisecond))
	if err := <-migrated; err != nil {
		t.Fatal(err)
	}
	t.Logf("keyspace %s migrated; %v since start", e.keyspace, time.Since(t1).Round(time.Millisecond))

	gw1, gw2 := e.addGateway("gw1", "127.0.0.11"), e.addGateway("gw2", "127.0.0.12")
	st1, st2 := e.addStore("store1", "127.0.0.21"), e.addStore("store2", "127.0.0.22")
	e.startTogether([]*clNode{gw1, gw2, st1, st2}, 30*time.Second)
	t.Logf("gateways and stores ready; %v since start", time.Since(began).Round(time.Millisecond))

	// Four users: alice and carol on gw1, bob and dave on gw2. Two direct
	// conversations across gateways and one group of all four.
	accts := map[string]clAccount{}
	for _, name := range []string{"alice", "bob", "carol", "dave"} {
		var a clAccount
		gw := gw1
		if name == "bob" || name == "dave" {
			gw = gw2
		}
		e.mustAPI(gw.addr, "POST", "/signup", "", map[string]string{"username": name, "password": clPassword}, &a, http.StatusCreated)
		accts[name] = a
	}
	var ab, cd, grp clConv
	e.mustAPI(gw1.addr, "POST", "/conversations/direct", accts["alice"].Token, map[string]string{"username": "bob"}, &ab, http.StatusOK)
	e.mustAPI(gw2.addr, "POST", "/conversations/direct", accts["dave"].Token, map[string]string{"username": "carol"}, &cd, http.StatusOK)
	e.mustAPI(gw2.addr, "POST", "/conversations", accts["bob"].Token,
		map[string]any{"title": "all four", "members": []string{"alice", "carol", "dave"}}, &grp, http.StatusCreated)
	ph := &clPhase{e: e, tokens: map[string]string{ab.ID: accts["alice"].Token, cd.ID: accts["carol"].Token, grp.ID: accts["bob"].Token}, skip: map[string]bool{}}
	for _, u := range []struct {
		name  string
		gw    int
		convs []string
	}{{"alice", 0, []string{ab.ID, grp.ID}}, {"bob", 1, []string{ab.ID, grp.ID}}, {"carol", 0, []string{cd.ID, grp.ID}}, {"dave", 1, []string{cd.ID, grp.ID}}} {
		c := newClClient(e, u.name, accts[u.name], u.convs)
		if err := c.connect(u.gw); err != nil {
			t.Fatal(err)
		}
		go c.run()
		t.Cleanup(c.close)
		ph.clients = append(ph.clients, c)
	}

	t.Run("Chat", func(t *testing.T) {
		ph.traffic(t, 3*time.Second)
		ph.verify(t, 60*time.Second)
		for _, c := range ph.clients {
			c.mu.Lock()
			n := len(c.reconnects)
			c.mu.Unlock()
			if n > 0 {
				t.Errorf("%s reconnected %d times without a fault", c.name, n)
			}
		}
	})

	t.Run("MessagesChange", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var conv string
		err := e.clChangesScenario(ctx, gw1, gw2, &conv)
		if conv != "" {
			// Its rows are its own: the exact row counts of the later
			// scenarios leave them out.
			ph.skip[conv] = true
		}
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("StoreKill9", func(t *testing.T) {
		ph.on()
		ph.period(1500 * time.Millisecond)
		if err := st1.proc.signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		st1.proc.waitExit(10 * time.Second)
		t.Logf("store1 killed with SIGKILL while messages flow")
		ph.period(3 * time.Second)
		ph.verify(t, 90*time.Second)
		e.start(st1)
		e.waitReady(st1, 2*time.Minute)
	})

	t.Run("GatewayKill9", func(t *testing.T) {
		var moved []*clClient
		for _, c := range ph.clients {
			if c.gateway() == 0 {
				moved = append(moved, c)
			}
		}
		if len(moved) == 0 {
			t.Fatal("no client on gw1")
		}
		probes := map[*clClient]int{}
		for _, c := range moved {
			c.mu.Lock()
			probes[c] = c.probeAcks
			c.mu.Unlock()
		}
		ph.on()
		ph.period(1500 * time.Millisecond)
		killed := time.Now()
		if err := gw1.proc.signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		gw1.proc.waitExit(10 * time.Second)
		for _, c := range moved {
			e.poll(c.name+" reconnected to gw2", 30*time.Second, func() error {
				if c.gateway() != 1 {
					return fmt.Errorf("on gw%d", c.gateway()+1)
				}
				return nil
			})
		}
		t.Logf("gw1 killed with SIGKILL; its clients on gw2 after %v", time.Since(killed).Round(time.Millisecond))
		ph.period(2 * time.Second)
		ph.verify(t, 90*time.Second)
		for _, c := range moved {
			c.mu.Lock()
			rcs := slices.Clone(c.reconnects)
			got := c.probeAcks - probes[c]
			c.mu.Unlock()
			if len(rcs) == 0 {
				t.Errorf("%s: no reconnect recorded", c.name)
				continue
			}
			rc := rcs[len(rcs)-1]
			t.Logf("%s: reconnected gw%d -> gw%d in %v (%d dials), caught up %d messages with history after=, resent %d unacked and %d acked sends",
				c.name, rc.from+1, rc.to+1, rc.took.Round(time.Millisecond), rc.attempts, rc.caughtUp, rc.resent, rc.probes)
			if rc.probes == 0 {
				t.Errorf("%s: no acked send to resend: the dedup probe did not run", c.name)
			}
			// Each resent acked send must be acked again with its first
			// message (the ack handler records any other answer as an error).
			if got != rc.probes {
				t.Errorf("%s: %d of %d resent acked sends were acked again", c.name, got, rc.probes)
			}
		}
		e.start(gw1)
		e.waitReady(gw1, time.Minute)
	})

	t.Run("NATSNodeStop", func(t *testing.T) {
		leader, err := e.streamLeader()
		if err != nil {
			t.Fatalf("stream leader: %v", err)
		}
		var node *clNode
		for _, n := range e.nats {
			if n.name == "nats-"+leader {
				node = n
			}
		}
		if node == nil {
			t.Fatalf("stream leader %q is none of ours", leader)
		}
		ph.on()
		ph.period(1500 * time.Millisecond)
		stopped := time.Now()
		if err := node.proc.signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if !node.proc.waitExit(30 * time.Second) {
			t.Fatalf("%s still running 30 s after SIGTERM", node.name)
		}
		t.Logf("%s (the stream leader) stopped in %v while messages flow", node.name, time.Since(stopped).Round(time.Millisecond))
		ph.period(4 * time.Second)
		ph.verify(t, 90*time.Second)
		e.start(node)
		e.waitNATS(node, time.Minute)
		for _, n := range []*clNode{gw1, gw2, st1, st2} {
			e.waitReady(n, time.Minute)
		}
	})

	t.Run("CassandraOutage", func(t *testing.T) {
		script, err := filepath.Abs(filepath.Join("..", "..", "schema", "cassandra.sh"))
		if err != nil {
			t.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(cass)
		cassCmd := func(arg string, d time.Duration) (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			cmd := exec.CommandContext(ctx, script, arg)
			cmd.Env = append(os.Environ(), "CASSANDRA_ADDR="+host, "CASSANDRA_PORT="+port)
			cmd.WaitDelay = 5 * time.Second
			out, err := cmd.CombinedOutput()
			if err != nil {
				return string(out), fmt.Errorf("cassandra.sh %s: %w", arg, err)
			}
			return string(out), nil
		}
		if out, err := cassCmd("status", time.Minute); err != nil {
			t.Skipf("the Cassandra at %s is not schema/cassandra.sh's (status: %v %s); cannot stop it", cass, err, out)
		}
		// Whatever happens, leave Cassandra running.
		t.Cleanup(func() {
			if _, err := cassCmd("status", time.Minute); err == nil {
				return
			}
			if out, err := cassCmd("start", 5*time.Minute); err != nil {
				t.Errorf("restarting Cassandra: %v\n%s", err, out)
			}
		})
		for _, c := range ph.clients {
			c.interval.Store(int64(400 * time.Millisecond))
		}
		ph.on()
		ph.period(time.Second)
		t0 := time.Now()
		out, err := cassCmd("stop", 3*time.Minute)
		if err != nil {
			t.Fatalf("cassandra.sh stop: %v\n%s", err, out)
		}
		down := time.Now()
		t.Logf("Cassandra stopped in %v (%s); down for 20 s while sends continue", down.Sub(t0).Round(time.Millisecond), strings.TrimSpace(out))
		ph.period(20 * time.Second)
		up := time.Now()
		ph.off()
		// Acks go on without the database: every send of the outage acked
		// within 5 s.
		e.poll("all sends of the outage acked", 60*time.Second, func() error { return ph.allAcked() })
		n, slowest := 0, time.Duration(0)
		for _, c := range ph.clients {
			c.mu.Lock()
			for _, s := range c.sends {
				if s.first.After(down) && s.first.Before(up) {
					n++
					slowest = max(slowest, s.ackedAt.Sub(s.first))
				}
			}
			c.mu.Unlock()
		}
		t.Logf("%d sends during the outage, all acked, slowest ack %v", n, slowest.Round(time.Millisecond))
		if n < 20 {
			t.Errorf("only %d sends while Cassandra was down", n)
		}
		if slowest > 5*time.Second {
			t.Errorf("an ack took %v while Cassandra was down, want < 5 s", slowest)
		}
		t1 := time.Now()
		out, err = cassCmd("start", 5*time.Minute)
		if err != nil {
			// Go on if Cassandra came back all the same: the checks below
			// still say whether the cluster recovered.
			t.Errorf("cassandra.sh start: %v\n%s", err, out)
		}
		t.Logf("cassandra.sh start returned in %v: %s", time.Since(t1).Round(time.Millisecond), strings.TrimSpace(out))
		e.poll("Cassandra answering CQL", 5*time.Minute, func() error {
			c, err := net.DialTimeout("tcp", cass, 5*time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		t.Logf("Cassandra back in %v", time.Since(t1).Round(time.Millisecond))
		t2 := time.Now()
		ph.verify(t, 3*time.Minute)
		t.Logf("store caught up and history complete %v after Cassandra answered again", time.Since(t2).Round(time.Millisecond))
		for _, c := range ph.clients {
			c.interval.Store(int64(200 * time.Millisecond))
		}
	})

	t.Run("GatewaySIGTERM", func(t *testing.T) {
		// Drain the gateway that holds most clients.
		count := make([]int, len(e.gws))
		for _, c := range ph.clients {
			count[c.gateway()]++
		}
		gi := 0
		if count[1] > count[0] {
			gi = 1
		}
		gw, other := e.gws[gi], e.gws[1-gi]
		e.waitReady(other, time.Minute)
		var drained []*clClient
		for _, c := range ph.clients {
			if c.gateway() == gi {
				drained = append(drained, c)
			}
		}
		// An idle kept-alive HTTP connection, to ask /readyz after the
		// listener closed.
		tr := &http.Transport{Proxy: nil, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
		defer tr.CloseIdleConnections()
		probe := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		readyz := func() (int, error) {
			resp, err := probe.Get("http://" + gw.addr + "/readyz")
			if err != nil {
				return 0, err
			}
			// Read to the end, or the transport does not keep the connection.
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		if code, err := readyz(); err != nil || code != http.StatusOK {
			t.Fatalf("%s /readyz before SIGTERM: %d %v", gw.name, code, err)
		}
		ph.on()
		ph.period(time.Second)
		term := time.Now()
		if err := syscall.Kill(gw.proc.cmd.Process.Pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		var got503 time.Duration
		var seen []string
		err := pollUntil(clDrain, 20*time.Millisecond, func() error {
			code, err := readyz()
			at := time.Since(term).Round(time.Millisecond)
			if err != nil {
				seen = append(seen, fmt.Sprintf("%v: %v", at, err))
				return fmt.Errorf("no answer: %w", err)
			}
			seen = append(seen, fmt.Sprintf("%v: %d", at, code))
			if code != http.StatusServiceUnavailable {
				return fmt.Errorf("status %d", code)
			}
			got503 = time.Since(term)
			return nil
		})
		if err != nil {
			t.Errorf("%s /readyz after SIGTERM on a kept-alive connection: never 503 (answers: %v)", gw.name, seen[:min(len(seen), 8)])
		} else {
			t.Logf("%s /readyz 503 %v after SIGTERM", gw.name, got503.Round(time.Millisecond))
		}
		if !gw.proc.waitExit(clDrain + 10*time.Second) {
			t.Errorf("%s still running %v after SIGTERM (drain %v)", gw.name, time.Since(term).Round(time.Millisecond), clDrain)
		} else {
			took := gw.proc.exited.Sub(term)
			t.Logf("%s exited %v after SIGTERM (%v)", gw.name, took.Round(time.Millisecond), gw.proc.cmd.ProcessState)
			if !gw.proc.cmd.ProcessState.Success() {
				t.Errorf("%s exit status %v after SIGTERM, want 0", gw.name, gw.proc.cmd.ProcessState)
			}
			if took > clDrain+5*time.Second {
				t.Errorf("%s took %v to exit, want within drain %v + 5 s", gw.name, took, clDrain)
			}
		}
		for _, c := range drained {
			var cl *clClose
			e.poll(c.name+" closed by "+gw.name, 15*time.Second, func() error {
				c.mu.Lock()
				defer c.mu.Unlock()
				for i := range c.closes {
					if c.closes[i].gw == gi && c.closes[i].at.After(term) {
						cl = &c.closes[i]
						return nil
					}
				}
				return fmt.Errorf("still open")
			})
			after := cl.at.Sub(term)
			t.Logf("%s: closed with code %d %v after SIGTERM", c.name, cl.code, after.Round(time.Millisecond))
			if cl.code != 4002 {
				t.Errorf("%s: close code %d (%v), want 4002 (draining)", c.name, cl.code, cl.err)
			}
			if after > clDrain+time.Second {
				t.Errorf("%s: closed %v after SIGTERM, beyond the drain period %v", c.name, after, clDrain)
			}
		}
		for _, c := range drained {
			e.poll(c.name+" reconnected to "+other.name, 30*time.Second, func() error {
				if c.gateway() == gi {
					return fmt.Errorf("still on %s", gw.name)
				}
				return nil
			})
		}
		ph.period(time.Second)
		ph.verify(t, 90*time.Second)
	})

	n := 0
	for _, msgs := range ackedByConv(ph.clients) {
		n += len(msgs)
	}
	t.Logf("%d messages acked and checked; whole test %v", n, time.Since(began).Round(time.Millisecond))
}

// clPhase drives the clients and checks the cluster after each fault.
type clPhase struct {
	e       *clusterEnv
	clients []*clClient
	tokens  map[string]string // a member's token per conversation
	skip    map[string]bool   // conversations the row checks leave out
}

func (ph *clPhase) on() {
	for _, c := range ph.clients {
		c.sending.Store(true)
	}
}

func (ph *clPhase) off() {
	for _, c := range ph.clients {
		c.sending.Store(false)
	}
}

// period lets messages flow for d: a length of time on purpose, not a
// synchronisation.
func (ph *clPhase) period(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	<-t.C
}

func (ph *clPhase) traffic(t *testing.T, d time.Duration) {
	ph.on()
	ph.period(d)
	ph.off()
}

func (ph *clPhase) allAcked() error {
	var pending []string
	for _, c := range ph.clients {
		for _, s := range c.unacked() {
			pending = append(pending, fmt.Sprintf("%s (%d attempts, first %v ago)", s.clientID, s.attempts, time.Since(s.first).Round(time.Millisecond)))
		}
	}
	if len(pending) > 0 {
		if len(pending) > 8 {
			pending = append(pending[:8], fmt.Sprintf("... %d more", len(pending)-8))
		}
		return fmt.Errorf("unacked: %s", strings.Join(pending, ", "))
	}
	return nil
}

// verify stops the traffic, waits for every send to be acked, then checks
// that every client knows every message of its conversations (live or
// through catch-up), that Cassandra holds every acked message exactly once
// and nothing else, and that history through the HTTP API returns them
// all, in order, both ways. d bounds the store's catching up.
func (ph *clPhase) verify(t *testing.T, d time.Duration) {
	t.Helper()
	e := ph.e
	ph.off()
	start := time.Now()
	if err := pollUntil(60*time.Second, 100*time.Millisecond, ph.allAcked); err != nil {
		t.Errorf("sends still unacked after 60 s: %v", err)
	}
	errsTotal := 0
	for _, c := range ph.clients {
		errs, notes := c.takeErrs()
		for _, n := range notes {
			t.Logf("note: %s", n)
		}
		for i, er := range errs {
			if i < 10 {
				t.Error(er)
			}
		}
		errsTotal += len(errs)
		c.mu.Lock()
		if len(c.sendErrs) > 0 {
			t.Logf("%s: send errors answered so far (then resent): %v", c.name, c.sendErrs)
		}
		c.mu.Unlock()
	}
	want := ackedByConv(ph.clients)
	total := 0
	for _, m := range want {
		total += len(m)
	}

	// Every client knows every acked message of its conversations.
	if err := pollUntil(20*time.Second, 100*time.Millisecond, func() error {
		var miss []string
		for _, c := range ph.clients {
			c.mu.Lock()
			for _, conv := range c.convs {
				var ids []string
				for id, a := range want[conv] {
					if !c.known[conv][id] {
						ids = append(ids, id+" ("+a.clientID+")")
					}
				}
				if len(ids) > 0 {
					slices.Sort(ids)
					miss = append(miss, fmt.Sprintf("%s misses %d of %d messages of %s: %v", c.name, len(ids), len(want[conv]), conv, ids[:min(len(ids), 5)]))
				}
			}
			c.mu.Unlock()
		}
		if len(miss) > 0 {
			return fmt.Errorf("%s", strings.Join(miss, "; "))
		}
		return nil
	}); err != nil {
		t.Errorf("messages not delivered (live frames and history catch-up): %v", err)
	}

	// Cassandra: every acked message exactly once; the store writes
	// behind the stream, so poll.
	deadline := time.Now().Add(d)
	var lastErr error
	err := pollUntil(d, 500*time.Millisecond, func() error {
		s, err := e.cql(e.keyspace)
		if err != nil {
			return err
		}
		defer s.Close()
		return pollUntil(time.Until(deadline), 500*time.Millisecond, func() error {
			lastErr = checkCassandraExcept(s, want, ph.skip)
			return lastErr
		})
	})
	if err != nil {
		t.Errorf("Cassandra after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	inCass := time.Since(start)

	// History through a gateway's HTTP API, both ways.
	addr := ""
	for _, g := range e.gws {
		if g.proc.running() {
			addr = g.addr
			break
		}
	}
	pages := 0
	for conv, token := range ph.tokens {
		err := pollUntil(time.Until(deadline)+10*time.Second, 500*time.Millisecond, func() error {
			n, err := e.checkHistory(addr, token, conv, want[conv])
			pages += n
			return err
		})
		if err != nil {
			t.Errorf("history of %s: %v", conv, err)
		}
	}
	t.Logf("%d acked messages (%d conversations of %v): in Cassandra exactly once after %v, history complete and ordered after %v (%d pages); %d client errors",
		total, len(want), perConv(want), inCass.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), pages, errsTotal)
}

func perConv(want map[string]map[string]clAcked) []int {
	var out []int
	for _, m := range want {
		out = append(out, len(m))
	}
	slices.Sort(out)
	return out
}
