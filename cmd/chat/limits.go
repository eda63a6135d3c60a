package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/chatcluster/chat/gateway"
)

// limitOptions are the throttle and per-user limit flags of chat dev and
// chat gateway (docs/PROTOCOL.md, Limits). Zero values take
// gateway.Config's defaults, which the flags' defaults repeat.
type limitOptions struct {
	TrustedProxyHeader string // header naming the client address; "" (default): the socket's peer
	TrustedProxies     string // CIDRs allowed to set it, comma separated
	// ThrottleExempt are CIDRs no throttle counts, comma separated; "none"
	// for none. chat dev's default (and its meaning of ""): loopback.
	ThrottleExempt     string
	LoginWindow        time.Duration
	PairFailures       int
	AccountFailures    int
	AddressFailures    int
	SignupWindow       time.Duration
	Signups            int
	MaxUserConnections int
	UserSendRate       float64
	UserSendBurst      int
}

// devThrottleExempt is chat dev's --throttle-exempt: the developer's own
// machine, where tests and scripts sign up and log in all day.
const devThrottleExempt = "127.0.0.0/8,::1/128"

// addLimitFlags registers the limit flags on fs; exempt is
// --throttle-exempt's default.
func addLimitFlags(fs *flag.FlagSet, o *limitOptions, exempt string) {
	*o = limitOptions{ThrottleExempt: exempt, LoginWindow: 15 * time.Minute, PairFailures: 5, AccountFailures: 100,
		AddressFailures: 50, SignupWindow: time.Hour, Signups: 10, MaxUserConnections: 20, UserSendRate: 20, UserSendBurst: 50}
	fs.StringVar(&o.TrustedProxyHeader, "trusted-proxy-header", "", "header from which the throttles take the client's address (X-Forwarded-For), only from --trusted-proxies; default none: the socket's address")
	fs.StringVar(&o.TrustedProxies, "trusted-proxies", "", "CIDRs of the proxies that set --trusted-proxy-header, comma separated (10.0.0.0/8)")
	fs.StringVar(&o.ThrottleExempt, "throttle-exempt", exempt, `client CIDRs no login or signup throttle counts, comma separated; "none" for none`)
	fs.Var(positiveDuration{&o.LoginWindow}, "login-window", "window of the three failed-login bounds")
	fs.Var(positiveInt{&o.PairFailures}, "login-failures-per-pair", "failed logins one client address may make against one account per --login-window")
	fs.Var(positiveInt{&o.AccountFailures}, "login-failures-per-account", "failed logins one account may take per --login-window; past it only addresses that have not failed against it may try")
	fs.Var(positiveInt{&o.AddressFailures}, "login-failures-per-address", "failed logins one client address may make per --login-window, whatever the accounts")
	fs.Var(positiveDuration{&o.SignupWindow}, "signup-window", "window of --signups-per-address")
	fs.Var(positiveInt{&o.Signups}, "signups-per-address", "signups one client address may make per --signup-window")
	fs.Var(positiveInt{&o.MaxUserConnections}, "max-user-connections", "WebSocket connections one user may hold on all gateways together; one more is closed with 4029")
	fs.Var(positiveFloat{&o.UserSendRate}, "user-send-rate", "requests a second one user may make across all their connections to one gateway")
	fs.Var(positiveInt{&o.UserSendBurst}, "user-send-burst", "burst of --user-send-rate")
}

// apply puts the options into c, refusing bad CIDRs.
func (o limitOptions) apply(c *gateway.Config, defaultExempt string) error {
	var err error
	c.TrustedProxyHeader = o.TrustedProxyHeader
	if c.TrustedProxies, err = parsePrefixes("--trusted-proxies", o.TrustedProxies); err != nil {
		return err
	}
	exempt := o.ThrottleExempt
	switch exempt {
	case "":
		exempt = defaultExempt
	case "none":
		exempt = ""
	}
	if c.Throttle.Exempt, err = parsePrefixes("--throttle-exempt", exempt); err != nil {
		return err
	}
	if c.TrustedProxyHeader != "" && len(c.TrustedProxies) == 0 {
		return errors.New("--trusted-proxy-header (CHAT_TRUSTED_PROXY_HEADER) needs --trusted-proxies (CHAT_TRUSTED_PROXIES): from anyone else the header would be forged")
	}
	if c.TrustedProxyHeader == "" && len(c.TrustedProxies) > 0 {
		return errors.New("--trusted-proxies (CHAT_TRUSTED_PROXIES) needs --trusted-proxy-header (CHAT_TRUSTED_PROXY_HEADER)")
	}
	c.Throttle.LoginWindow, c.Throttle.PairFailures = o.LoginWindow, o.PairFailures
	c.Throttle.AccountFailures, c.Throttle.AddressFailures = o.AccountFailures, o.AddressFailures
	c.Throttle.SignupWindow, c.Throttle.Signups = o.SignupWindow, o.Signups
	c.MaxUserConnections, c.UserSendRate, c.UserSendBurst = o.MaxUserConnections, o.UserSendRate, o.UserSendBurst
	return nil
}

func parsePrefixes(flagName, s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range splitList(s) {
		p, err := netip.ParsePrefix(item)
		if err != nil {
			// A single address stands for itself.
			a, aerr := netip.ParseAddr(item)
			if aerr != nil {
				return nil, fmt.Errorf("%s: %q is not a CIDR such as 10.0.0.0/8 or an address", flagName, item)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// errNotPositiveNumber refuses a count or rate flag of zero or less.
var errNotPositiveNumber = errors.New("must be a positive number")

type positiveInt struct{ n *int }

func (p positiveInt) String() string {
	if p.n == nil {
		return ""
	}
	return strconv.Itoa(*p.n)
}

func (p positiveInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return err
	}
	if n <= 0 {
		return errNotPositiveNumber
	}
	*p.n = n
	return nil
}

type positiveFloat struct{ f *float64 }

func (p positiveFloat) String() string {
	if p.f == nil {
		return ""
	}
	return strconv.FormatFloat(*p.f, 'g', -1, 64)
}

func (p positiveFloat) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return err
	}
	if !(f > 0) || f > 1e9 {
		return errNotPositiveNumber
	}
	*p.f = f
	return nil
}
