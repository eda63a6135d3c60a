package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/chatcluster/chat/gateway"
)

// --hello-conversations and its twin CHAT_HELLO_CONVERSATIONS: the
// default, either way of setting it, the flag winning over the
// environment, and values refused with an error (never silently the
// default, never above the protocol's page of 1,000).
func TestHelloConversationsFlag(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		args      []string
		want      int
		bad       bool
	}{
		{name: "default", want: gateway.DefaultHelloConversations},
		{name: "flag", args: []string{"--hello-conversations", "50"}, want: 50},
		{name: "env", env: "7", want: 7},
		{name: "flag beats env", env: "7", args: []string{"--hello-conversations=3"}, want: 3},
		{name: "least", args: []string{"--hello-conversations", "1"}, want: 1},
		{name: "most", args: []string{"--hello-conversations", "1000"}, want: 1000},
		{name: "zero", args: []string{"--hello-conversations", "0"}, bad: true},
		{name: "over the page", args: []string{"--hello-conversations", "1001"}, bad: true},
		{name: "negative env", env: "-1", bad: true},
		{name: "not a number", env: "many", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("CHAT_HELLO_CONVERSATIONS", tc.env)
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var n int
			helloConversationsFlag(fs, &n)
			err := parseFlags(fs, tc.args)
			if tc.bad {
				// The flag package words a command-line error with %v, not %w.
				if err == nil || !errors.Is(err, errHelloConversations) && !strings.Contains(err.Error(), errHelloConversations.Error()) {
					t.Fatalf("err %v (value %d), want errHelloConversations", err, n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.want {
				t.Fatalf("hello conversations %d, want %d", n, tc.want)
			}
		})
	}
}
