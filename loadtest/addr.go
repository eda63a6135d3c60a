package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sync/atomic"
	"time"
)

// ErrNotLoopback is returned for a target URL whose host is not on this
// machine's loopback: the generator never sends traffic anywhere else.
var ErrNotLoopback = errors.New("target is not a loopback address (127.0.0.0/8, ::1 or localhost)")

// Target is a validated server address.
type Target struct {
	HTTP string // base URL, e.g. http://127.0.0.1:8080 (no trailing slash)
	WS   string // WebSocket URL of /ws
	Addr netip.AddrPort
}

// ParseTarget checks that raw is an http(s) or ws(s) URL whose host is a
// loopback address or "localhost" (resolved here to 127.0.0.1, not through
// the resolver, so a doctored hosts file cannot redirect the traffic).
func ParseTarget(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("parse url %q: %w", raw, err)
	}
	var httpScheme, wsScheme string
	switch u.Scheme {
	case "http", "ws":
		httpScheme, wsScheme = "http", "ws"
	case "https", "wss":
		return Target{}, fmt.Errorf("url %q: TLS is not supported (terminate TLS in front of the gateway)", raw)
	default:
		return Target{}, fmt.Errorf("url %q: scheme must be http or ws", raw)
	}
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = "80"
	}
	var ip netip.Addr
	if host == "localhost" {
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	} else {
		ip, err = netip.ParseAddr(host)
		if err != nil {
			return Target{}, fmt.Errorf("url %q: %w", raw, ErrNotLoopback)
		}
	}
	ip = ip.Unmap()
	if !ip.IsLoopback() {
		return Target{}, fmt.Errorf("url %q: %w", raw, ErrNotLoopback)
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(ip.String(), port))
	if err != nil {
		return Target{}, fmt.Errorf("url %q: %w", raw, err)
	}
	hp := ap.String()
	return Target{HTTP: httpScheme + "://" + hp, WS: wsScheme + "://" + hp + "/ws", Addr: ap}, nil
}

// SourceAddrs returns the local addresses to spread connections over when
// dialling target: 127.0.0.2–127.0.0.254 for an IPv4 loopback target, so that
// each source address has its own ephemeral port range and the ~28,000 ports
// of one address are no limit. For ::1 there is only one source address; nil
// means "let the kernel choose".
func SourceAddrs(target netip.Addr) []netip.Addr {
	if !target.Is4() || !target.IsLoopback() {
		return nil
	}
	out := make([]netip.Addr, 0, 253)
	for i := 2; i <= 254; i++ {
		out = append(out, netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}))
	}
	return out
}

// Spreader dials TCP connections from source addresses taken round-robin.
type Spreader struct {
	addrs   []netip.Addr
	next    atomic.Uint64
	timeout time.Duration
}

// NewSpreader returns a Spreader over addrs (none: the kernel chooses).
func NewSpreader(addrs []netip.Addr, timeout time.Duration) *Spreader {
	return &Spreader{addrs: addrs, timeout: timeout}
}

// Pick returns the next source address, or the zero Addr when there is none.
func (s *Spreader) Pick() netip.Addr {
	if len(s.addrs) == 0 {
		return netip.Addr{}
	}
	return s.addrs[(s.next.Add(1)-1)%uint64(len(s.addrs))]
}

// DialContext has the signature of net.Dialer.DialContext.
func (s *Spreader) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: s.timeout, KeepAlive: -1, Control: dialControl}
	if src := s.Pick(); src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	return d.DialContext(ctx, network, addr)
}
