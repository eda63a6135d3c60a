package main

// TestRing runs the cluster of TestCluster (three nats-server, two chat
// gateway, two chat store) on a three-node Cassandra ring with replication
// factor 3 and the store's default consistency (LOCAL_QUORUM), as in
// production, and takes Cassandra nodes away while messages flow: one
// killed with SIGKILL (sends and history go on, nothing acked is lost, the
// node rejoins and catches up), then two down at once (no quorum: sends are
// still acked, the writes wait in JetStream, and drain with nothing lost
// once one node returns).
//
// It needs the ring of `schema/cassandra.sh start --nodes 3`:
//
//	CHAT_TEST_RING=127.0.0.2:9042,127.0.0.3:9042,127.0.0.4:9042
//	CHAT_TEST_RING_HOME=<the CASSANDRA_HOME_DIR it was started with>  (default schema/.cassandra)
//
// and restarts the nodes it stops before it ends.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocql/gocql"
)

// ringNodes is the ring of CHAT_TEST_RING: node K (1-based) is hosts[K-1],
// the node cassandra.sh --node K acts on.
type ringNodes struct {
	t      *testing.T
	hosts  []string
	script string
	home   string

	mu   sync.Mutex
	down map[int]bool
}

func (r *ringNodes) cmd(d time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.script, args...)
	cmd.Env = os.Environ()
	if r.home != "" {
		cmd.Env = append(cmd.Env, "CASSANDRA_HOME_DIR="+r.home)
	}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("cassandra.sh %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// kill crashes node k (SIGKILL).
func (r *ringNodes) kill(k int) {
	r.t.Helper()
	r.mu.Lock()
	r.down[k] = true
	r.mu.Unlock()
	if out, err := r.cmd(time.Minute, "kill", "--nodes", fmt.Sprint(len(r.hosts)), "--node", fmt.Sprint(k)); err != nil {
		r.t.Fatalf("%v\n%s", err, out)
	}
}

// start starts node k again and waits for its CQL port; it returns how
// long that took.
func (r *ringNodes) start(k int) time.Duration {
	r.t.Helper()
	t0 := time.Now()
	if out, err := r.cmd(10*time.Minute, "start", "--nodes", fmt.Sprint(len(r.hosts)), "--node", fmt.Sprint(k)); err != nil {
		r.t.Fatalf("%v\n%s", err, out)
	}
	r.mu.Lock()
	delete(r.down, k)
	r.mu.Unlock()
	return time.Since(t0)
}

// restartDown starts every node the test stopped: the ring outlives it.
func (r *ringNodes) restartDown() {
	r.mu.Lock()
	var ks []int
	for k := range r.down {
		ks = append(ks, k)
	}
	r.mu.Unlock()
	for _, k := range ks {
		if out, err := r.cmd(10*time.Minute, "start", "--nodes", fmt.Sprint(len(r.hosts)), "--node", fmt.Sprint(k)); err != nil {
			r.t.Errorf("restarting ring node %d: %v\n%s", k, err, out)
		}
	}
}

// session connects to the given nodes only, reading at cons.
func (r *ringNodes) session(keyspace string, cons gocql.Consistency, ks ...int) (*gocql.Session, error) {
	var hosts []string
	for _, k := range ks {
		hosts = append(hosts, r.hosts[k-1])
	}
	c := gocql.NewCluster(hosts...)
	c.Keyspace = keyspace
	c.Consistency = cons
	c.Timeout = 30 * time.Second
	c.ConnectTimeout = 10 * time.Second
	c.NumConns = 1
	if len(ks) == 1 {
		// Only this node coordinates: with RF 3 it holds every row, and at
		// ONE with the others down it answers from its own data.
		h, _, _ := net.SplitHostPort(r.hosts[ks[0]-1])
		c.HostFilter = gocql.WhiteListHostFilter(h)
	}
	return c.CreateSession()
}

// pendingHints is the number of hint files node k holds for others.
func (r *ringNodes) pendingHints(k int) (int, error) {
	s, err := r.session("", gocql.One, k)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	iter := s.Query(`SELECT files FROM system_views.pending_hints`).Iter()
	total, files := 0, 0
	for iter.Scan(&files) {
		total += files
	}
	return total, iter.Close()
}

// hintsFlushPeriod is Cassandra's hints_flush_period (default 10 s): a
// hint waits in memory up to that long before it is a file that
// system_views.pending_hints counts.
const hintsFlushPeriod = 10 * time.Second

// awaitHintsDelivered waits until nodes 1 and 3 hold no hint for node 2,
// and have held none for longer than a flush period: a hint still in
// memory is no file yet, and killing its node would lose it (a CI run
// did: node 2 then lacked one acked message).
func (r *ringNodes) awaitHintsDelivered(e *clusterEnv) {
	var clear time.Time
	e.poll("hints for ring node 2 delivered", 3*time.Minute, func() error {
		for _, k := range []int{1, 3} {
			n, err := r.pendingHints(k)
			if err != nil {
				return fmt.Errorf("node %d: %w", k, err)
			}
			if n > 0 {
				clear = time.Time{}
				return fmt.Errorf("node %d holds %d hint files", k, n)
			}
		}
		if clear.IsZero() {
			clear = time.Now()
		}
		if d := time.Since(clear); d < hintsFlushPeriod+2*time.Second {
			return fmt.Errorf("no hint files for %v: waiting out a flush period", d.Round(time.Second))
		}
		return nil
	})
}

func TestRing(t *testing.T) {
	if testing.Short() {
		t.Skip("the real cluster on a Cassandra ring takes minutes; skipped with -short")
	}
	spec := os.Getenv("CHAT_TEST_RING")
	if spec == "" {
		t.Skip("set CHAT_TEST_RING=127.0.0.2:9042,127.0.0.3:9042,127.0.0.4:9042 (schema/cassandra.sh start --nodes 3)")
	}
	hosts := strings.Split(spec, ",")
	if len(hosts) != 3 {
		t.Fatalf("CHAT_TEST_RING names %d nodes, want the 3 of cassandra.sh start --nodes 3", len(hosts))
	}
	for i, h := range hosts {
		if _, _, err := net.SplitHostPort(h); err != nil {
			hosts[i] = net.JoinHostPort(h, "9042")
		}
		c, err := net.DialTimeout("tcp", hosts[i], 10*time.Second)
		if err != nil {
			t.Fatalf("CHAT_TEST_RING node %s unreachable: %v", hosts[i], err)
		}
		c.Close()
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "schema", "cassandra.sh"))
	if err != nil {
		t.Fatal(err)
	}
	ring := &ringNodes{t: t, hosts: hosts, script: script, home: os.Getenv("CHAT_TEST_RING_HOME"), down: map[int]bool{}}
	if out, err := ring.cmd(time.Minute, "status", "--nodes", "3"); err != nil {
		t.Skipf("the ring at %s is not cassandra.sh's (set CHAT_TEST_RING_HOME?): %v\n%s", spec, err, out)
	}

	began := time.Now()
	e := newClusterEnv(t, strings.Join(hosts, ","))
	// Registered after newClusterEnv's cleanup, so it runs first: the
	// stores see the ring whole again before they stop.
	t.Cleanup(ring.restartDown)
	e.rf, e.storeConsistency, e.checkCons = 3, "", gocql.Quorum
	e.build()
	migrated := make(chan error, 1)
	go func() { migrated <- e.migrate() }()
	e.startNATS()
	if err := <-migrated; err != nil {
		t.Fatal(err)
	}
	t.Logf("built, NATS up, keyspace %s migrated with RF 3 in %v", e.keyspace, time.Since(began).Round(time.Millisecond))
	gw1, gw2 := e.addGateway("gw1", "127.0.0.11"), e.addGateway("gw2", "127.0.0.12")
	st1, st2 := e.addStore("store1", "127.0.0.21"), e.addStore("store2", "127.0.0.22")
	e.startTogether([]*clNode{gw1, gw2, st1, st2}, 60*time.Second)
	ph := chatters(t, e, gw1, gw2)

	t.Run("Chat", func(t *testing.T) {
		ph.traffic(t, 3*time.Second)
		ph.verify(t, 60*time.Second)
	})

	t.Run("OneNodeKill9", func(t *testing.T) {
		ph.on()
		ph.period(1500 * time.Millisecond)
		ring.kill(2)
		t.Logf("ring node 2 (%s) killed with SIGKILL while messages flow", hosts[1])
		// Sends, persisting and history go on at LOCAL_QUORUM with two of
		// three replicas: verify checks all three.
		ph.period(5 * time.Second)
		ph.verify(t, 90*time.Second)
		for _, st := range []*clNode{st1, st2} {
			e.waitReady(st, time.Minute)
		}
		ph.on()
		took := ring.start(2)
		t.Logf("ring node 2 restarted (commit log replayed) in %v while messages flow", took.Round(time.Millisecond))
		ph.period(2 * time.Second)
		ph.verify(t, 90*time.Second)
		// The node catches up through the hints the others kept for it.
		ring.awaitHintsDelivered(e)
	})

	t.Run("TwoNodesDown", func(t *testing.T) {
		// Nothing in flight: every acked message is in Cassandra.
		ph.verify(t, 60*time.Second)
		ring.awaitHintsDelivered(e)
		before := ackedByConv(ph.clients)
		ring.kill(1)
		ring.kill(3)
		t.Logf("ring nodes 1 and 3 killed: only node 2, the one that rejoined, is up")
		// Node 2 alone holds every message acked before: it caught up.
		e.poll("node 2 alone holds every acked message", time.Minute, func() error {
			s, err := ring.session(e.keyspace, gocql.One, 2)
			if err != nil {
				return err
			}
			defer s.Close()
			return checkCassandra(s, before)
		})
		// No quorum: sends are acked (JetStream has them), the writes wait.
		for _, c := range ph.clients {
			c.interval.Store(int64(400 * time.Millisecond))
		}
		ph.on()
		down := time.Now()
		ph.period(10 * time.Second)
		ph.off()
		e.poll("all sends without a quorum acked", 60*time.Second, func() error { return ph.allAcked() })
		n := 0
		for _, c := range ph.clients {
			c.mu.Lock()
			for _, s := range c.sends {
				if s.first.After(down) {
					n++
				}
			}
			c.mu.Unlock()
		}
		t.Logf("%d sends acked while two of three Cassandra nodes were down", n)
		if n < 20 {
			t.Errorf("only %d sends while two nodes were down", n)
		}
		for _, st := range []*clNode{st1, st2} {
			if code, _, err := e.get("http://" + st.addr + "/readyz"); err == nil && code == http.StatusOK {
				t.Logf("%s ready without a quorum (its last write may have been before the outage)", st.name)
			}
		}
		// One node back: a quorum again, the backlog drains.
		took := ring.start(3)
		t.Logf("ring node 3 restarted in %v", took.Round(time.Millisecond))
		t2 := time.Now()
		ph.verify(t, 3*time.Minute)
		t.Logf("the backlog drained and history complete %v after node 3 answered", time.Since(t2).Round(time.Millisecond))
		for _, c := range ph.clients {
			c.interval.Store(int64(200 * time.Millisecond))
		}
	})

	// The last node back, then the whole ring at work once more.
	took := ring.start(1)
	t.Logf("ring node 1 restarted in %v", took.Round(time.Millisecond))
	ph.traffic(t, 2*time.Second)
	ph.verify(t, 90*time.Second)
	t.Logf("whole test %v", time.Since(began).Round(time.Millisecond))
}

// chatters signs up alice and carol on gw1, bob and dave on gw2, makes two
// direct conversations across the gateways and a group of all four, and
// connects a client per user that sends while the phase is on.
func chatters(t *testing.T, e *clusterEnv, gw1, gw2 *clNode) *clPhase {
	t.Helper()
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
	ph := &clPhase{e: e, tokens: map[string]string{ab.ID: accts["alice"].Token, cd.ID: accts["carol"].Token, grp.ID: accts["bob"].Token}}
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
	return ph
}
