package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/chatcluster/chat/gateway"
)

// envName is the environment twin of a flag: --jwt-secret is CHAT_JWT_SECRET.
func envName(flagName string) string {
	return "CHAT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args; a flag not given on the command line takes its
// environment twin's value when that is set.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " (env " + envName(f.Name) + ")" })
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, e)
			}
		}
	})
	return err
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// originsUsage documents --allowed-origins, a flag of chat dev and chat
// gateway.
const originsUsage = "other origins whose pages may use the API and WebSocket, comma separated (https://app.example.com; * for any); default: same origin only"

// editWindowUsage documents --edit-window, a flag of chat dev and chat
// gateway.
const editWindowUsage = "how long after sending a message its sender may edit it (deleting has no limit)"

// errNotPositive refuses a duration flag of zero or less: gateway.Config
// would silently read 0 as its default, which is not what someone who typed
// --edit-window 0 meant.
var errNotPositive = errors.New("must be a positive duration such as 30m or 48h")

// positiveDuration is a duration flag that refuses zero and negative values.
type positiveDuration struct{ d *time.Duration }

func (p positiveDuration) String() string {
	if p.d == nil {
		return ""
	}
	return p.d.String()
}

func (p positiveDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if d <= 0 {
		return errNotPositive
	}
	*p.d = d
	return nil
}

// editWindowFlag registers --edit-window (CHAT_EDIT_WINDOW) on fs, default
// gateway.DefaultEditWindow.
func editWindowFlag(fs *flag.FlagSet, d *time.Duration) {
	*d = gateway.DefaultEditWindow
	fs.Var(positiveDuration{d}, "edit-window", editWindowUsage)
}

// helloConversationsUsage documents --hello-conversations, a flag of chat
// dev and chat gateway.
const helloConversationsUsage = "how many conversations hello lists, most recent activity first, and the most one GET /conversations page holds (1-1000; clients page through the rest)"

// errHelloConversations refuses a --hello-conversations outside 1-1000:
// gateway.Config would read 0 as its default, and the protocol promises
// at most 1,000 a page.
var errHelloConversations = errors.New("must be a whole number from 1 to 1000")

// boundedInt is an int flag that refuses values outside [lo, hi].
type boundedInt struct {
	n      *int
	lo, hi int
	err    error
}

func (b boundedInt) String() string {
	if b.n == nil {
		return ""
	}
	return strconv.Itoa(*b.n)
}

func (b boundedInt) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < b.lo || n > b.hi {
		return b.err
	}
	*b.n = n
	return nil
}

// helloConversationsFlag registers --hello-conversations
// (CHAT_HELLO_CONVERSATIONS) on fs, default gateway.DefaultHelloConversations.
func helloConversationsFlag(fs *flag.FlagSet, n *int) {
	*n = gateway.DefaultHelloConversations
	fs.Var(boundedInt{n: n, lo: 1, hi: gateway.DefaultHelloConversations, err: errHelloConversations}, "hello-conversations", helloConversationsUsage)
}

// errNotPositiveBytes refuses a size flag of zero or less, for the same
// reason as errNotPositive.
var errNotPositiveBytes = errors.New("must be a positive number of bytes")

// positiveBytes is a byte-count flag that refuses zero and negative values.
type positiveBytes struct{ n *int }

func (p positiveBytes) String() string {
	if p.n == nil {
		return ""
	}
	return strconv.Itoa(*p.n)
}

func (p positiveBytes) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return err
	}
	if n <= 0 {
		return errNotPositiveBytes
	}
	*p.n = n
	return nil
}

// maxReassemblyFlag registers --max-reassembly (CHAT_MAX_REASSEMBLY) on fs,
// default gateway.DefaultMaxReassembly.
func maxReassemblyFlag(fs *flag.FlagSet, n *int) {
	*n = gateway.DefaultMaxReassembly
	fs.Var(positiveBytes{n}, "max-reassembly", "bytes all WebSocket connections together may hold for messages not fully arrived; past it a connection is closed with 1013 (default 67108864, 64 MiB)")
}
