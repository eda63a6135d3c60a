package gateway

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ThrottleConfig bounds failed logins and signups (PROTOCOL.md, Limits).
// Each bound is a token bucket: Failures per Window, forgiven at an even
// pace over the window, so an address that stops failing is free again
// within one window. Counted per gateway: behind a load balancer that
// spreads one client over G gateways an attacker gets up to G times as
// many tries (set the bounds to the cluster's budget divided by G).
// Zero values take the defaults.
type ThrottleConfig struct {
	// LoginWindow is the window of the three login bounds. Default 15m.
	LoginWindow time.Duration
	// PairFailures is how many failed logins one client address may make
	// against one account per LoginWindow. Default 5.
	PairFailures int
	// AccountFailures is how many failed logins one account may take from
	// every address together per LoginWindow. Beyond it, only addresses
	// that have not failed against the account may try (so its owner can
	// still log in from home while it is under attack). Default 100.
	AccountFailures int
	// AddressFailures is how many failed logins one client address may
	// make per LoginWindow, whatever the accounts. Default 50.
	AddressFailures int
	// SignupWindow and Signups: how many signups one client address may
	// make per window. Defaults 1h and 10.
	SignupWindow time.Duration
	Signups      int
	// Exempt are client addresses no throttle counts (chat dev exempts
	// loopback, for the tests and scripts of a developer's machine).
	// Default none.
	Exempt []netip.Prefix
	// MaxEntries bounds each table of counters (addresses, accounts,
	// pairs); past it the fullest entries are forgotten. Default 100,000.
	MaxEntries int
}

func (c *ThrottleConfig) setDefaults() {
	if c.LoginWindow <= 0 {
		c.LoginWindow = 15 * time.Minute
	}
	if c.SignupWindow <= 0 {
		c.SignupWindow = time.Hour
	}
	for _, v := range []struct {
		p *int
		d int
	}{{&c.PairFailures, 5}, {&c.AccountFailures, 100}, {&c.AddressFailures, 50}, {&c.Signups, 10}, {&c.MaxEntries, 100_000}} {
		if *v.p <= 0 {
			*v.p = v.d
		}
	}
}

// Reasons a request is refused by a limit: the label values of
// chat_gateway_throttled_total (a fixed set).
const (
	throttleLoginPair       = "login_pair"
	throttleLoginAccount    = "login_account"
	throttleLoginAddress    = "login_address"
	throttleSignupAddress   = "signup_address"
	throttleUserConnections = "user_connections"
	throttleUserRate        = "user_rate"
)

var throttleReasons = []string{throttleLoginPair, throttleLoginAccount, throttleLoginAddress,
	throttleSignupAddress, throttleUserConnections, throttleUserRate}

// newThrottledCounter registers chat_gateway_throttled_total.
func newThrottledCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chat_gateway_throttled_total",
		Help: "Requests refused by a throttle or a per-user limit, by reason.",
	}, []string{"reason"})
	reg.MustRegister(c)
	for _, r := range throttleReasons {
		c.WithLabelValues(r)
	}
	return c
}

// bucket is one key's tokens as of at.
type bucket struct {
	tokens float64
	at     time.Time
}

// buckets are token buckets by key: burst tokens, refilled at rate a
// second. A key without an entry is full. Not safe for concurrent use.
type buckets struct {
	rate, burst float64
	max         int
	m           map[string]*bucket
}

func newBuckets(n int, window time.Duration, max int) *buckets {
	return &buckets{rate: float64(n) / window.Seconds(), burst: float64(n), max: max, m: make(map[string]*bucket)}
}

// level is key's tokens at now.
func (b *buckets) level(key string, now time.Time) float64 {
	e := b.m[key]
	if e == nil {
		return b.burst
	}
	return math.Min(b.burst, e.tokens+now.Sub(e.at).Seconds()*b.rate)
}

// wait is how long until key has a whole token: 0 when it has one.
func (b *buckets) wait(key string, now time.Time) time.Duration {
	l := b.level(key, now)
	if l >= 1 {
		return 0
	}
	return time.Duration(math.Ceil((1 - l) / b.rate * float64(time.Second)))
}

// add changes key's tokens by n (negative: take), within [0, burst].
func (b *buckets) add(key string, n float64, now time.Time) {
	l := math.Max(0, math.Min(b.burst, b.level(key, now)+n))
	if l >= b.burst {
		delete(b.m, key)
		return
	}
	if e := b.m[key]; e != nil {
		e.tokens, e.at = l, now
		return
	}
	if len(b.m) >= b.max {
		b.sweep(now)
	}
	b.m[key] = &bucket{tokens: l, at: now}
}

// sweep forgets refilled entries and, while the table is still over three
// quarters of its bound, any others (an attacker with more addresses than
// the table holds gets fresh counters, the table stays bounded).
func (b *buckets) sweep(now time.Time) {
	for k := range b.m {
		if b.level(k, now) >= b.burst {
			delete(b.m, k)
		}
	}
	for k := range b.m {
		if len(b.m) <= b.max*3/4 {
			break
		}
		delete(b.m, k)
	}
}

// throttle holds the login and signup counters of a gateway.
type throttle struct {
	mu      sync.Mutex
	pair    *buckets // account + "\x00" + address
	account *buckets
	address *buckets
	signup  *buckets
	refused *prometheus.CounterVec
}

func newThrottle(c ThrottleConfig, refused *prometheus.CounterVec) *throttle {
	return &throttle{
		pair:    newBuckets(c.PairFailures, c.LoginWindow, c.MaxEntries),
		account: newBuckets(c.AccountFailures, c.LoginWindow, c.MaxEntries),
		address: newBuckets(c.AddressFailures, c.LoginWindow, c.MaxEntries),
		signup:  newBuckets(c.Signups, c.SignupWindow, c.MaxEntries),
		refused: refused,
	}
}

// beginLogin decides whether a login of account from addr may be tried.
// When it may, it counts the try as a failure at once (so that parallel
// tries cannot all pass the check before any fails) and the caller calls
// loginSucceeded if the password was right. When it may not, it answers
// the reason and how long to wait.
func (t *throttle) beginLogin(account, addr string, now time.Time) (reason string, wait time.Duration) {
	if addr == "" {
		return "", 0 // exempt
	}
	pk := account + "\x00" + addr
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.address.wait(addr, now); w > 0 {
		return t.refuse(throttleLoginAddress, w)
	}
	if w := t.pair.wait(pk, now); w > 0 {
		return t.refuse(throttleLoginPair, w)
	}
	// The account's own bound holds only for addresses that have failed
	// against it: a clean address is its owner's way in.
	if w := t.account.wait(account, now); w > 0 && t.pair.level(pk, now) < t.pair.burst {
		return t.refuse(throttleLoginAccount, w)
	}
	t.address.add(addr, -1, now)
	t.pair.add(pk, -1, now)
	t.account.add(account, -1, now)
	return "", 0
}

// loginSucceeded gives back what beginLogin took, and forgets the pair's
// earlier failures: its owner knows the password.
func (t *throttle) loginSucceeded(account, addr string, now time.Time) {
	if addr == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.address.add(addr, 1, now)
	t.account.add(account, 1, now)
	delete(t.pair.m, account+"\x00"+addr)
}

// loginNotTried gives back what beginLogin took when the password could
// not be checked (the store or the hashing was unavailable).
func (t *throttle) loginNotTried(account, addr string, now time.Time) {
	if addr == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.address.add(addr, 1, now)
	t.account.add(account, 1, now)
	t.pair.add(account+"\x00"+addr, 1, now)
}

// beginSignup counts a signup from addr, or refuses it.
func (t *throttle) beginSignup(addr string, now time.Time) (reason string, wait time.Duration) {
	if addr == "" {
		return "", 0 // exempt
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.signup.wait(addr, now); w > 0 {
		return t.refuse(throttleSignupAddress, w)
	}
	t.signup.add(addr, -1, now)
	return "", 0
}

// signupNotTried gives back a signup that was refused before it could
// make an account (bad input, a taken username, the store unavailable).
func (t *throttle) signupNotTried(addr string, now time.Time) {
	if addr == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.signup.add(addr, 1, now)
}

func (t *throttle) refuse(reason string, wait time.Duration) (string, time.Duration) {
	t.refused.WithLabelValues(reason).Inc()
	return reason, wait
}

// writeThrottled answers 429 rate_limited with Retry-After in whole
// seconds (at least 1).
func writeThrottled(w http.ResponseWriter, wait time.Duration, msg string) {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, "rate_limited", msg+"; try again in "+strconv.Itoa(secs)+" s")
}

// loginKey is the account a login names, as the throttle counts it: the
// folded username, or for a name that cannot be one, its first 64 bytes
// (no account has it, but guesses at it are still failures).
func loginKey(folded string, ok bool, raw string) string {
	if ok {
		return folded
	}
	if len(raw) > 64 {
		raw = raw[:64]
	}
	return "\x01" + raw
}
