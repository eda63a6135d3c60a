package loadtest

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseTarget(t *testing.T) {
	good := map[string]string{
		"http://127.0.0.1:8080":       "ws://127.0.0.1:8080/ws",
		"http://localhost:9000/":      "ws://127.0.0.1:9000/ws",
		"ws://127.1.2.3:1/ws":         "ws://127.1.2.3:1/ws",
		"http://[::1]:8080":           "ws://[::1]:8080/ws",
		"http://127.0.0.1":            "ws://127.0.0.1:80/ws",
		"http://[::ffff:127.0.0.9]:5": "ws://127.0.0.9:5/ws",
	}
	for raw, ws := range good {
		tg, err := ParseTarget(raw)
		if err != nil {
			t.Errorf("ParseTarget(%q): %v", raw, err)
			continue
		}
		if tg.WS != ws {
			t.Errorf("ParseTarget(%q).WS = %q, want %q", raw, tg.WS, ws)
		}
	}
	for _, raw := range []string{
		"http://10.0.0.1:8080", "http://192.168.1.1", "http://8.8.8.8", "http://example.com",
		"http://localhost.example.com", "http://[::2]:80", "http://0.0.0.0:8080", "http://128.0.0.1",
	} {
		if _, err := ParseTarget(raw); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("ParseTarget(%q) = %v, want ErrNotLoopback", raw, err)
		}
	}
	for _, raw := range []string{"ftp://127.0.0.1", "https://127.0.0.1", "::"} {
		if _, err := ParseTarget(raw); err == nil {
			t.Errorf("ParseTarget(%q) accepted", raw)
		}
	}
}

func TestSourceAddrsSpread(t *testing.T) {
	addrs := SourceAddrs(netip.MustParseAddr("127.0.0.1"))
	if len(addrs) != 253 || addrs[0] != netip.MustParseAddr("127.0.0.2") || addrs[252] != netip.MustParseAddr("127.0.0.254") {
		t.Fatalf("unexpected source range: %d addrs %v..%v", len(addrs), addrs[0], addrs[len(addrs)-1])
	}
	if SourceAddrs(netip.MustParseAddr("::1")) != nil {
		t.Fatal("::1 must not be spread over IPv4 sources")
	}
	s := NewSpreader(addrs, 0)
	seen := map[netip.Addr]int{}
	for i := 0; i < 253*4; i++ {
		seen[s.Pick()]++
	}
	if len(seen) != 253 {
		t.Fatalf("%d distinct sources, want 253", len(seen))
	}
	for a, n := range seen {
		if n != 4 || !a.IsLoopback() {
			t.Fatalf("source %v picked %d times, want 4 (evenly)", a, n)
		}
	}
	if NewSpreader(nil, 0).Pick().IsValid() {
		t.Fatal("empty spreader must pick no address")
	}
}
