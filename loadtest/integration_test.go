package loadtest

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatcluster/chat/loadtest/internal/fakechat"
)

// goBuild builds a package of this module into dir and returns the binary.
func goBuild(t *testing.T, pkg, dir string) (string, error) {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = ".."
	b, err := cmd.CombinedOutput()
	if err != nil {
		return "", &buildError{pkg: pkg, out: string(b), err: err}
	}
	return out, nil
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return "go build " + e.pkg + ": " + e.err.Error() + "\n" + e.out }

func TestProcsAgainstFake(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds cmd/chatload")
	}
	exe, err := goBuild(t, "./cmd/chatload", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := runFake(t, fakechat.Options{},
		Options{Scenario: "chat", Conns: 30, Group: 3, Senders: 10, Rate: 200, Duration: time.Second, Procs: 3, Exe: exe})
	m := rep.Messages
	if rep.Raw.Workers != 3 || rep.Connect.OK != 30 {
		t.Fatalf("workers %d connected %d, want 3 and 30", rep.Raw.Workers, rep.Connect.OK)
	}
	if m.Sent != 200 || m.Acked != 200 || m.Delivered != 400 || m.Expected != 400 || rep.E2ELatency.Count != 400 {
		t.Fatalf("sent %d acked %d delivered %d expected %d", m.Sent, m.Acked, m.Delivered, m.Expected)
	}
	var workers int
	for _, p := range rep.Generator.Processes {
		if strings.HasPrefix(p.Role, "worker ") && p.Phase == "run" {
			workers++
		}
	}
	if workers != 3 {
		t.Fatalf("CPU of %d worker processes reported, want 3: %+v", workers, rep.Generator.Processes)
	}
}

var devURL = regexp.MustCompile(`chat dev: open (http://[0-9.:\[\]]+)/`)

// startDevServer builds and runs the real server (chat dev) and returns its
// URL and PID; it is stopped when the test ends.
func startDevServer(t *testing.T) (string, int) {
	t.Helper()
	dir := t.TempDir()
	bin, err := goBuild(t, "./cmd/chat", dir)
	if err != nil {
		t.Skipf("the server does not build yet, so the integration test cannot run: %v", err)
	}
	cmd := exec.Command(bin, "dev", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--log-level", "warn")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlCh := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			if m := devURL.FindStringSubmatch(sc.Text()); m != nil && !sent {
				urlCh <- m[1]
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		pw.Close()
		wg.Wait()
	})
	select {
	case u := <-urlCh:
		return u, cmd.Process.Pid
	case <-time.After(60 * time.Second):
		t.Fatal("chat dev printed no URL within 60s")
	}
	return "", 0
}

func TestIntegrationDevServer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the real server")
	}
	url, pid := startDevServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var sum strings.Builder

	// Sign-up hashes passwords (argon2id) and is slow: the users of the first
	// run are reused by the others.
	users := filepath.Join(t.TempDir(), "users.json")
	idle, err := Run(ctx, Options{Scenario: "idle", URL: url, Conns: 50, Duration: 2 * time.Second, GatewayPID: pid, UsersFile: users})
	if err != nil {
		t.Fatalf("idle: %v", err)
	}
	idle.WriteSummary(&sum)
	if idle.Connect.OK != 50 || idle.Hold.HeldAtEnd != 50 || idle.Hold.Dropped != 0 {
		t.Errorf("idle: connect %+v hold %+v", idle.Connect, idle.Hold)
	}
	if idle.Gateway.Source != "proc" || idle.Gateway.RSSAfterMB <= 0 {
		t.Errorf("idle: gateway memory not measured: %+v", idle.Gateway)
	}

	chat, err := Run(ctx, Options{Scenario: "chat", URL: url, Conns: 50, Group: 5, Senders: 10, Rate: 100, Duration: 2 * time.Second, UsersFile: users})
	if err != nil {
		t.Fatalf("chat: %v", err)
	}
	chat.WriteSummary(&sum)
	if chat.Setup.Reused != 50 {
		t.Errorf("chat: %d users reused, want 50", chat.Setup.Reused)
	}

	bc, err := Run(ctx, Options{Scenario: "broadcast", URL: url, Conns: 20, Senders: 2, Rate: 10, Duration: 2 * time.Second, UsersFile: users})
	if err != nil {
		t.Fatalf("broadcast: %v", err)
	}
	bc.WriteSummary(&sum)

	// Every connection dropped at once comes back, takes hello and its
	// catch-up page.
	st, err := Run(ctx, Options{Scenario: "storm", URL: url, Conns: 30, Group: 5, Senders: 6, Rate: 30, Duration: 3 * time.Second,
		StormAt: time.Second, StormJitter: 500 * time.Millisecond, UsersFile: users})
	if err != nil {
		t.Fatalf("storm: %v", err)
	}
	st.WriteSummary(&sum)
	if s := st.Storm; s == nil || s.Dropped != 30 || s.Reconnected != 30 || s.CaughtUp != 30 || len(s.Failed) != 0 {
		t.Errorf("storm: %+v", s)
	}
	t.Log("\n" + sum.String())
	if b := bc.Messages; bc.Connect.OK != 20 || b.Acked != 20 || b.Expected != 20*19 || b.Delivered != b.Expected {
		t.Errorf("broadcast: connected %d acked %d delivered %d of %d", bc.Connect.OK, b.Acked, b.Delivered, b.Expected)
	}
	m := chat.Messages
	if chat.Connect.OK != 50 || m.Sent != 200 || m.Acked != 200 || len(m.Errors) != 0 {
		t.Errorf("chat: connected %d sent %d acked %d errors %v", chat.Connect.OK, m.Sent, m.Acked, m.Errors)
	}
	if m.Expected != 800 || m.Delivered != 800 {
		t.Errorf("chat: delivered %d of %d expected", m.Delivered, m.Expected)
	}
	if chat.AckLatency.Count != 200 || chat.E2ELatency.Count != 800 {
		t.Errorf("chat: latency samples ack %d e2e %d", chat.AckLatency.Count, chat.E2ELatency.Count)
	}
}
