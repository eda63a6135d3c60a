package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// buildChat compiles this command once per test binary run.
func buildChat(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chat")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

// startDevProcess runs `chat dev` as a child process and returns its URL.
func startDevProcess(t *testing.T, bin, data string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, "dev", "--addr", "127.0.0.1:0", "--data", data, "--log-level", "warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "chat dev: open "); ok {
				urls <- strings.TrimSuffix(u, "/")
			}
		}
		close(urls)
	}()
	select {
	case u, ok := <-urls:
		if !ok {
			t.Fatal("chat dev exited before printing its URL")
		}
		return cmd, u
	case <-time.After(60 * time.Second):
		t.Fatal("chat dev printed no URL in 60s")
	}
	return nil, ""
}

func httpJSON(t *testing.T, method, url, token, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
	return resp.StatusCode
}

// Every message acked before a kill -9 of chat dev is there after it
// starts again on the same data directory.
func TestRestartAfterKillKeepsAckedMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped in -short")
	}
	bin := buildChat(t)
	data := t.TempDir()
	cmd, base := startDevProcess(t, bin, data)

	var alice, bob struct {
		User  struct{ ID string } `json:"user"`
		Token string              `json:"token"`
	}
	if c := httpJSON(t, "POST", base+"/api/v1/signup", "", `{"username":"alice","password":"password-1"}`, &alice); c != 201 {
		t.Fatalf("signup %d", c)
	}
	if c := httpJSON(t, "POST", base+"/api/v1/signup", "", `{"username":"bob","password":"password-1"}`, &bob); c != 201 {
		t.Fatalf("signup %d", c)
	}
	var conv struct{ ID string }
	if c := httpJSON(t, "POST", base+"/api/v1/conversations/direct", alice.Token, `{"username":"bob"}`, &conv); c != 200 {
		t.Fatalf("direct %d", c)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/ws?token="+alice.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	const n = 50 // within one connection's burst allowance (Config.SendBurst)
	for i := 0; i < n; i++ {
		f := fmt.Sprintf(`{"type":"send","id":"%d","conversation":%q,"client_id":"c%d","body":"message %d"}`, i, conv.ID, i, i)
		if err := ws.Write(ctx, websocket.MessageText, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	acked := map[string]bool{}
	for len(acked) < n {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("after %d acks: %v", len(acked), err)
		}
		var f struct {
			Type    string
			Code    string
			Message struct{ ID string }
		}
		_ = json.Unmarshal(b, &f)
		switch f.Type {
		case "ack":
			acked[f.Message.ID] = true
		case "error":
			if f.Code != "rate_limited" {
				t.Fatalf("send failed: %s", b)
			}
			t.Fatalf("rate limited after %d acks: the burst should fit", len(acked))
		}
	}
	// The moment the last ack arrives, kill -9: no graceful anything.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	ws.CloseNow()

	_, base = startDevProcess(t, bin, data)
	// The token still works: the secret was kept in the data directory.
	got := map[string]bool{}
	var last string
	before := ""
	for {
		var page struct {
			Messages []struct {
				ID   string `json:"id"`
				Body string `json:"body"`
			} `json:"messages"`
			NextBefore *string `json:"next_before"`
		}
		url := base + "/api/v1/conversations/" + conv.ID + "/messages?limit=200" + before
		var code int
		deadline := time.Now().Add(30 * time.Second)
		for {
			code = httpJSON(t, "GET", url, bob.Token, "", &page)
			if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond) // the store is catching up: retry as a client would
		}
		if code != 200 {
			t.Fatalf("history after restart: %d", code)
		}
		for _, m := range page.Messages {
			if got[m.ID] {
				t.Fatalf("message %s twice", m.ID)
			}
			if last != "" && !idLess(m.ID, last) {
				t.Fatalf("history out of order: %s after %s", m.ID, last)
			}
			got[m.ID], last = true, m.ID
		}
		if page.NextBefore == nil {
			break
		}
		before = "&before=" + *page.NextBefore
	}
	for id := range acked {
		if !got[id] {
			t.Errorf("acked message %s lost across kill -9", id)
		}
	}
	if len(got) != n {
		t.Errorf("history has %d messages, %d were acked", len(got), n)
	}
}

// idLess compares decimal IDs as unsigned 64-bit numbers.
func idLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}
