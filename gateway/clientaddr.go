package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ErrBadLimits is a Config whose limits or client-address settings do not
// make sense.
var ErrBadLimits = errors.New("gateway: bad limits configuration")

// validateLimits checks the settings of throttle.go, clientaddr.go and
// userlimits.go that a default cannot fix.
func (c *Config) validateLimits() error {
	if c.TrustedProxyHeader != "" && len(c.TrustedProxies) == 0 {
		return fmt.Errorf("%w: a trusted proxy header (%s) needs the trusted proxies' addresses: from anyone else it would be forged", ErrBadLimits, c.TrustedProxyHeader)
	}
	if c.TrustedProxyHeader == "" && len(c.TrustedProxies) > 0 {
		return fmt.Errorf("%w: trusted proxies given without the header they set", ErrBadLimits)
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			return fmt.Errorf("%w: trusted proxy prefix %v", ErrBadLimits, p)
		}
	}
	return nil
}

// clientAddr is the client's address as the throttles count it: the
// socket's peer, or, when that peer is a trusted proxy, what the trusted
// proxy header says. An IPv6 address counts as its /64 (one subscriber's
// network), so a client cannot take a fresh address for each try.
// It is "" for an address of Config.Throttle.Exempt: not throttled.
func (s *Server) clientAddr(r *http.Request) string {
	a := s.clientIP(r)
	for _, p := range s.cfg.Throttle.Exempt {
		if p.Contains(a) {
			return ""
		}
	}
	return addrKey(a)
}

func (s *Server) clientIP(r *http.Request) netip.Addr {
	peer := parseHostAddr(r.RemoteAddr)
	if s.cfg.TrustedProxyHeader == "" || !peer.IsValid() || !s.trusted(peer) {
		return peer
	}
	// X-Forwarded-For style: the client first, each proxy appending the
	// address it got the request from. Walk from the right past our own
	// proxies: the first address they did not write is the client.
	var hops []string
	for _, v := range r.Header.Values(s.cfg.TrustedProxyHeader) {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHostAddr(strings.TrimSpace(hops[i]))
		if !a.IsValid() {
			break // garbage: trust nothing further left
		}
		client = a
		if !s.trusted(a) {
			break
		}
	}
	return client
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHostAddr reads "1.2.3.4", "1.2.3.4:5", "::1" or "[::1]:5".
func parseHostAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

func addrKey(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
