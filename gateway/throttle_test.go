package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// throttleEnv is a gateway whose throttles count the address that
// X-Forwarded-For names (the test client on loopback is the trusted
// proxy), so that one test can speak from many addresses.
func throttleEnv(t *testing.T, mod func(*Config)) *env {
	return newEnv(t, func(c *Config) {
		c.Throttle.Exempt = nil
		c.TrustedProxyHeader = "X-Forwarded-For"
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		if mod != nil {
			mod(c)
		}
	})
}

type apiAnswer struct {
	status     int
	retryAfter string
	code       string
}

// post sends body to path as if from the client address from (through
// the proxy on loopback); from "" sends no header.
func post(t *testing.T, addr, path, from string, body any) apiAnswer {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest("POST", "http://"+addr+path, strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if from != "" {
		req.Header.Set("X-Forwarded-For", from+", 127.0.0.9")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e apiError
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return apiAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), code: e.Error.Code}
}

func login(t *testing.T, e *env, from, name, password string) apiAnswer {
	t.Helper()
	return post(t, e.addr, "/api/v1/login", from, map[string]string{"username": name, "password": password})
}

// wantThrottled asserts a 429 rate_limited with a Retry-After of whole
// seconds, at least 1 and at most max.
func wantThrottled(t *testing.T, what string, a apiAnswer, max time.Duration) {
	t.Helper()
	if a.status != http.StatusTooManyRequests || a.code != "rate_limited" {
		t.Fatalf("%s: %d %q, want 429 rate_limited", what, a.status, a.code)
	}
	secs, err := strconv.Atoi(a.retryAfter)
	if err != nil || secs < 1 || time.Duration(secs)*time.Second > max+time.Second {
		t.Fatalf("%s: Retry-After %q, want 1..%v seconds", what, a.retryAfter, max.Seconds())
	}
}

func wantStatus(t *testing.T, what string, a apiAnswer, status int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: %d %q, want %d", what, a.status, a.code, status)
	}
}

func throttledCount(e *env, reason string) float64 {
	return testutil.ToFloat64(e.gw.throttled.WithLabelValues(reason))
}

func TestLoginThrottlePairThenAccount(t *testing.T) {
	e := throttleEnv(t, func(c *Config) {
		c.Throttle.PairFailures = 3
		c.Throttle.AccountFailures = 6
	})
	e.signupTokens(t, "victim")
	const good, bad = "password-123", "wrong-password"

	// One address: three wrong guesses, then refused, the right password too.
	for i := range 3 {
		wantStatus(t, fmt.Sprint("guess ", i), login(t, e, "203.0.113.1", "victim", bad), http.StatusUnauthorized)
	}
	wantThrottled(t, "fourth guess from the pair", login(t, e, "203.0.113.1", "victim", bad), 15*time.Minute)
	wantThrottled(t, "the right password from that pair", login(t, e, "203.0.113.1", "victim", good), 15*time.Minute)
	if n := throttledCount(e, throttleLoginPair); n != 2 {
		t.Errorf("throttled{login_pair} = %v, want 2", n)
	}

	// Another address fails three times: the account has taken its six.
	for i := range 3 {
		wantStatus(t, fmt.Sprint("second address guess ", i), login(t, e, "203.0.113.2", "victim", bad), http.StatusUnauthorized)
	}
	// A third address gets a first guess (it has not failed yet), then the
	// account's bound holds it.
	wantStatus(t, "a new address's first guess", login(t, e, "203.0.113.3", "victim", bad), http.StatusUnauthorized)
	wantThrottled(t, "an address that failed, on a spent account", login(t, e, "203.0.113.3", "victim", bad), 15*time.Minute)
	if n := throttledCount(e, throttleLoginAccount); n != 1 {
		t.Errorf("throttled{login_account} = %v, want 1", n)
	}
	// The owner, from an address that has not failed, still gets in, and
	// other accounts are untouched from the attacker's address.
	wantStatus(t, "the owner from home", login(t, e, "198.51.100.7", "victim", good), http.StatusOK)
	e.signupTokens(t, "bystander")
	wantStatus(t, "another account from the first address", login(t, e, "203.0.113.1", "bystander", good), http.StatusOK)
}

func TestLoginSuccessForgetsThePairsFailures(t *testing.T) {
	e := throttleEnv(t, func(c *Config) { c.Throttle.PairFailures = 2 })
	e.signupTokens(t, "typo")
	wantStatus(t, "a typo", login(t, e, "203.0.113.1", "typo", "password-12"), http.StatusUnauthorized)
	wantStatus(t, "then right", login(t, e, "203.0.113.1", "typo", "password-123"), http.StatusOK)
	wantStatus(t, "a typo later", login(t, e, "203.0.113.1", "typo", "password-12"), http.StatusUnauthorized)
	wantStatus(t, "right again", login(t, e, "203.0.113.1", "typo", "password-123"), http.StatusOK)
}

func TestLoginThrottlePerAddress(t *testing.T) {
	e := throttleEnv(t, func(c *Config) { c.Throttle.AddressFailures = 4 })
	e.signupTokens(t, "someone")
	for i := range 4 {
		// Unknown accounts count too: same answer, same cost.
		wantStatus(t, fmt.Sprint("spray ", i), login(t, e, "203.0.113.50", fmt.Sprintf("nobody%d", i), "password-123"), http.StatusUnauthorized)
	}
	wantThrottled(t, "fifth account from the address", login(t, e, "203.0.113.50", "someone", "password-123"), 15*time.Minute)
	if n := throttledCount(e, throttleLoginAddress); n != 1 {
		t.Errorf("throttled{login_address} = %v, want 1", n)
	}
	wantStatus(t, "another address", login(t, e, "203.0.113.51", "someone", "password-123"), http.StatusOK)
	// A malformed login is refused before the throttle and counts nothing.
	wantStatus(t, "no password", post(t, e.addr, "/api/v1/login", "203.0.113.51", map[string]string{"username": "someone"}), http.StatusBadRequest)
}

func TestSignupThrottlePerAddress(t *testing.T) {
	e := throttleEnv(t, func(c *Config) { c.Throttle.Signups = 2 })
	signup := func(from, name string) apiAnswer {
		return post(t, e.addr, "/api/v1/signup", from, map[string]string{"username": name, "password": "password-123"})
	}
	// Bad input is refused and counts nothing.
	for range 3 {
		wantStatus(t, "bad username", signup("203.0.113.9", "!"), http.StatusBadRequest)
	}
	wantStatus(t, "first", signup("203.0.113.9", "first"), http.StatusCreated)
	wantStatus(t, "a taken name", signup("203.0.113.9", "first"), http.StatusConflict) // counts: names are not free to probe
	wantThrottled(t, "third", signup("203.0.113.9", "third"), time.Hour)
	if n := throttledCount(e, throttleSignupAddress); n != 1 {
		t.Errorf("throttled{signup_address} = %v, want 1", n)
	}
	wantStatus(t, "from another address", signup("203.0.113.10", "third"), http.StatusCreated)
}

// A client that is not a trusted proxy cannot pick its address with the
// header: each guess with a new forged X-Forwarded-For still counts
// against its socket's address.
func TestForgedProxyHeaderIgnored(t *testing.T) {
	e := throttleEnv(t, func(c *Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		c.Throttle.AddressFailures = 3
	})
	for i := range 3 {
		wantStatus(t, fmt.Sprint("forged ", i), login(t, e, fmt.Sprintf("192.0.2.%d", i+1), fmt.Sprintf("nobody%d", i), "password-123"), http.StatusUnauthorized)
	}
	wantThrottled(t, "a fourth forged address", login(t, e, "192.0.2.99", "nobody9", "password-123"), 15*time.Minute)
	wantThrottled(t, "no header", login(t, e, "", "nobody10", "password-123"), 15*time.Minute)
}

func TestClientIP(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxyHeader: "X-Forwarded-For",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}}
	for _, c := range []struct {
		peer, header, want string
	}{
		{"192.0.2.1:5000", "", "192.0.2.1"},
		{"192.0.2.1:5000", "203.0.113.1", "192.0.2.1"},                // untrusted peer: header ignored
		{"10.1.2.3:5000", "203.0.113.1", "203.0.113.1"},               // the proxy's word
		{"10.1.2.3:5000", "198.51.100.1, 203.0.113.1", "203.0.113.1"}, // the client forged the left one
		{"10.1.2.3:5000", "203.0.113.1, 10.9.9.9", "203.0.113.1"},     // two proxies of ours
		{"10.1.2.3:5000", "garbage, 203.0.113.1", "203.0.113.1"},      // garbage left of the client
		{"10.1.2.3:5000", "203.0.113.1, garbage", "10.1.2.3"},         // garbage from our proxy: its own address
		{"10.1.2.3:5000", "", "10.1.2.3"},                             // no header: the peer
		{"[fd00::1]:5000", "[2001:db8::7]:443", "2001:db8::7"},        // IPv6 with a port
		{"10.1.2.3:5000", "::ffff:203.0.113.4", "203.0.113.4"},        // IPv4-mapped
	} {
		r := httptest.NewRequest("POST", "/api/v1/login", nil)
		r.RemoteAddr = c.peer
		if c.header != "" {
			r.Header.Set("X-Forwarded-For", c.header)
		}
		if got := s.clientIP(r).String(); got != c.want {
			t.Errorf("peer %s, header %q: %s, want %s", c.peer, c.header, got, c.want)
		}
	}
	// IPv6 clients count by /64.
	if a, b := addrKey(netip.MustParseAddr("2001:db8::1")), addrKey(netip.MustParseAddr("2001:db8::ffff:1")); a != b {
		t.Errorf("one /64 counted as %s and %s", a, b)
	}
}

func TestLimitsConfigRefused(t *testing.T) {
	for name, c := range map[string]Config{
		"header without proxies": {TrustedProxyHeader: "X-Forwarded-For"},
		"proxies without header": {TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	} {
		if err := c.validateLimits(); !errors.Is(err, ErrBadLimits) {
			t.Errorf("%s: %v, want ErrBadLimits", name, err)
		}
	}
}

func TestBuckets(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	b := newBuckets(5, 5*time.Second, 4) // one token a second, five at most
	for range 5 {
		if w := b.wait("k", t0); w != 0 {
			t.Fatalf("wait %v with tokens left", w)
		}
		b.add("k", -1, t0)
	}
	if w := b.wait("k", t0); w != time.Second {
		t.Fatalf("wait %v when empty, want 1s", w)
	}
	if w := b.wait("k", t0.Add(400*time.Millisecond)); w != 600*time.Millisecond {
		t.Fatalf("wait %v after 0.4s, want 0.6s", w)
	}
	if w := b.wait("k", t0.Add(time.Second)); w != 0 {
		t.Fatalf("wait %v after a second, want 0", w)
	}
	if _, ok := b.m["k"]; !ok || b.level("k", t0.Add(10*time.Second)) != 5 {
		t.Fatal("a key does not refill to its burst")
	}
	// Refilled keys leave the table; it never holds more than its bound.
	for i := range 20 {
		b.add(fmt.Sprint(i), -1, t0.Add(time.Minute))
	}
	if len(b.m) > 4 {
		t.Fatalf("table holds %d entries, bound 4", len(b.m))
	}
}
