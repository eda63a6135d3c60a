package main

import (
	"errors"
	"flag"
	"io"
	"testing"

	"github.com/chatcluster/chat/gateway"
)

// --max-reassembly and its twin CHAT_MAX_REASSEMBLY: the default, either
// way of setting it, the flag winning, and values refused with an error
// rather than silently becoming the default.
func TestMaxReassemblyFlag(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		args      []string
		want      int
		bad       bool
	}{
		{name: "default", want: gateway.DefaultMaxReassembly},
		{name: "flag", args: []string{"--max-reassembly", "1048576"}, want: 1 << 20},
		{name: "env", env: "2097152", want: 2 << 20},
		{name: "flag beats env", env: "2097152", args: []string{"--max-reassembly=4096"}, want: 4096},
		{name: "zero", args: []string{"--max-reassembly", "0"}, bad: true},
		{name: "negative env", env: "-1", bad: true},
		{name: "not a number", args: []string{"--max-reassembly", "64MiB"}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("CHAT_MAX_REASSEMBLY", tc.env)
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var n int
			maxReassemblyFlag(fs, &n)
			err := parseFlags(fs, tc.args)
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted, max reassembly %d", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.want {
				t.Fatalf("max reassembly %d, want %d", n, tc.want)
			}
		})
	}
	var n int
	if err := (positiveBytes{&n}).Set("-5"); !errors.Is(err, errNotPositiveBytes) {
		t.Fatalf("Set(-5) = %v, want errNotPositiveBytes", err)
	}
}
