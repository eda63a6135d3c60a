package main

import (
	"flag"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/chatcluster/chat/gateway"
)

// The limit flags: defaults, flags and their CHAT_* twins reach
// gateway.Config, and bad values are refused with an error.
func TestLimitFlags(t *testing.T) {
	parse := func(t *testing.T, exempt string, env map[string]string, args ...string) (gateway.Config, error) {
		t.Helper()
		for k, v := range env {
			t.Setenv(k, v)
		}
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var o limitOptions
		addLimitFlags(fs, &o, exempt)
		var c gateway.Config
		if err := parseFlags(fs, args); err != nil {
			return c, err
		}
		return c, o.apply(&c, exempt)
	}
	t.Run("defaults", func(t *testing.T) {
		c, err := parse(t, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		want := gateway.ThrottleConfig{LoginWindow: 15 * time.Minute, PairFailures: 5, AccountFailures: 100,
			AddressFailures: 50, SignupWindow: time.Hour, Signups: 10}
		if c.Throttle.LoginWindow != want.LoginWindow || c.Throttle.PairFailures != 5 || c.Throttle.AccountFailures != 100 ||
			c.Throttle.AddressFailures != 50 || c.Throttle.SignupWindow != time.Hour || c.Throttle.Signups != 10 || c.Throttle.Exempt != nil {
			t.Errorf("throttle %+v, want %+v", c.Throttle, want)
		}
		if c.MaxUserConnections != 20 || c.UserSendRate != 20 || c.UserSendBurst != 50 || c.TrustedProxyHeader != "" || c.TrustedProxies != nil {
			t.Errorf("config %+v", c)
		}
	})
	t.Run("dev exempts loopback", func(t *testing.T) {
		c, err := parse(t, devThrottleExempt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Throttle.Exempt) != 2 || !c.Throttle.Exempt[0].Contains(netip.MustParseAddr("127.0.0.1")) {
			t.Errorf("exempt %v", c.Throttle.Exempt)
		}
		if c, _ := parse(t, devThrottleExempt, nil, "--throttle-exempt", "none"); c.Throttle.Exempt != nil {
			t.Errorf("none: exempt %v", c.Throttle.Exempt)
		}
	})
	t.Run("flags and twins", func(t *testing.T) {
		c, err := parse(t, "", map[string]string{
			"CHAT_TRUSTED_PROXY_HEADER": "X-Forwarded-For", "CHAT_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1",
			"CHAT_MAX_USER_CONNECTIONS": "7", "CHAT_USER_SEND_RATE": "2.5", "CHAT_SIGNUPS_PER_ADDRESS": "3",
		}, "--user-send-burst", "9", "--login-failures-per-pair", "4", "--login-window", "5m", "--max-user-connections", "8")
		if err != nil {
			t.Fatal(err)
		}
		if c.TrustedProxyHeader != "X-Forwarded-For" || len(c.TrustedProxies) != 2 || c.TrustedProxies[1] != netip.MustParsePrefix("192.168.1.1/32") {
			t.Errorf("proxies %q %v", c.TrustedProxyHeader, c.TrustedProxies)
		}
		if c.MaxUserConnections != 8 || c.UserSendRate != 2.5 || c.UserSendBurst != 9 || c.Throttle.Signups != 3 ||
			c.Throttle.PairFailures != 4 || c.Throttle.LoginWindow != 5*time.Minute {
			t.Errorf("config %+v", c)
		}
	})
	for name, args := range map[string][]string{
		"zero connections":        {"--max-user-connections", "0"},
		"negative rate":           {"--user-send-rate", "-1"},
		"rate not a number":       {"--user-send-rate", "fast"},
		"zero window":             {"--login-window", "0s"},
		"bad CIDR":                {"--trusted-proxy-header", "X-Forwarded-For", "--trusted-proxies", "10.0.0.0/33"},
		"header without proxies":  {"--trusted-proxy-header", "X-Forwarded-For"},
		"proxies without header":  {"--trusted-proxies", "10.0.0.0/8"},
		"bad exempt":              {"--throttle-exempt", "localhost"},
		"zero signups":            {"--signups-per-address", "0"},
		"pair failures not a num": {"--login-failures-per-pair", "five"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parse(t, "", nil, args...); err == nil {
				t.Errorf("%v accepted", args)
			}
		})
	}
}
