package loadtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

const usage = `chatload: load generator for the chat server (loopback targets only)

usage:
  chatload idle      --url URL --conns N [--users U] --duration D
  chatload chat      --url URL --conns N --group G --senders S --rate R --duration D
  chatload broadcast --url URL --members M --senders S --rate R --duration D
  chatload fanout --url URL [--centrifugo URL] --subscribers N --rate R --duration D [--chat-pid P --centrifugo-pid Q]

common flags: --procs K --gateway-pid PID --json FILE --body-size B
  --signup-concurrency C --connect-concurrency C --connect-timeout D
  --drain-timeout D --timeout D --max-inflight N --no-spread --prefix P --quiet
Run "chatload <scenario> -h" for every flag.
`

// Main is the whole command line of cmd/chatload; it returns the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "worker":
		return workerMain(ctx, args[1:], stdin, stdout, stderr)
	case "fanout":
		return fanoutMain(ctx, args[1:], stdout, stderr)
	case "idle", "chat", "broadcast":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "chatload: unknown scenario %q\n%s", args[0], usage)
		return 2
	}
	o := Options{Scenario: args[0]}
	fs := flag.NewFlagSet("chatload "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	defURL := "http://127.0.0.1:8080"
	if v := os.Getenv("CHAT_URL"); v != "" {
		defURL = v
	}
	fs.StringVar(&o.URL, "url", defURL, "server base URL (loopback only; env CHAT_URL)")
	switch o.Scenario {
	case "idle":
		fs.IntVar(&o.Conns, "conns", 1000, "connections to open and hold")
		fs.IntVar(&o.Users, "users", 0, "distinct users the connections log in as (default: one per connection)")
	case "chat", "storm":
		if o.Scenario == "storm" {
			fs.DurationVar(&o.StormAt, "storm-at", 5*time.Second, "drop every connection this far into the run (0: only the server drops them, e.g. a killed gateway)")
			fs.DurationVar(&o.StormJitter, "storm-jitter", 5*time.Second, "reconnects spread at random over this long (the client's backoff jitter)")
		}
		fs.IntVar(&o.Conns, "conns", 200, "connections, one user each")
		fs.IntVar(&o.Group, "group", 10, "members per conversation")
		fs.IntVar(&o.Senders, "senders", 0, "sending connections (default: one per conversation)")
		fs.Float64Var(&o.Rate, "rate", 100, "total messages per second over all senders")
	case "broadcast":
		fs.IntVar(&o.Conns, "members", 1000, "members of the one group, all connected")
		fs.IntVar(&o.Senders, "senders", 0, "sending members (default: max(10, rate/10))")
		fs.Float64Var(&o.Rate, "rate", 10, "total messages per second over all senders")
		fs.IntVar(&o.CreateBatch, "create-batch", 999, "members named in the create call; the rest are added one by one")
	}
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "hold (idle) or send (chat, broadcast) time")
	fs.IntVar(&o.Procs, "procs", 1, "worker processes to spread connections over (each has its own open-file limit)")
	fs.IntVar(&o.GatewayPID, "gateway-pid", 0, "gateway PID: read its VmRSS and CPU from /proc (else its /metrics)")
	defMetrics := os.Getenv("CHAT_METRICS_URL")
	fs.StringVar(&o.MetricsURL, "metrics-url", defMetrics, "base URL of the gateway's /metrics, its --metrics-addr (e.g. http://127.0.0.1:9090; env CHAT_METRICS_URL); default: --url")
	fs.StringVar(&o.JSONPath, "json", "", "write the JSON report to this file")
	fs.IntVar(&o.BodySize, "body-size", 64, "message body size in bytes")
	fs.IntVar(&o.SignupConcurrency, "signup-concurrency", 32, "parallel HTTP set-up requests")
	fs.IntVar(&o.ConnectConcurrency, "connect-concurrency", 256, "parallel WebSocket dials")
	fs.DurationVar(&o.ConnectTimeout, "connect-timeout", 15*time.Second, "dial + upgrade + hello timeout")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 5*time.Second, "wait at most this long for the last acks and deliveries")
	fs.DurationVar(&o.Timeout, "timeout", 0, "hard limit for the whole run (default duration + 30m)")
	fs.IntVar(&o.MaxInflight, "max-inflight", 1000, "unacked sends per connection before sends are skipped")
	fs.BoolVar(&o.NoSpread, "no-spread", false, "do not spread source addresses over 127.0.0.2-254")
	fs.StringVar(&o.Prefix, "prefix", "", "username prefix (default random)")
	fs.StringVar(&o.UsersFile, "users-file", "", "reuse users and tokens saved in this file by earlier runs against the same server; new users are added to it")
	fs.StringVar(&o.Password, "password", "", "password of the users (default a fixed one)")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chatload: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if (o.Scenario == "chat" || o.Scenario == "storm") && o.Senders == 0 && o.Group > 0 {
		// One sender per conversation, and enough senders that each stays
		// well under the gateway's default per-connection rate (20/s).
		o.Senders = min(o.Conns, max(1, o.Conns/o.Group, int(math.Ceil(o.Rate/SenderRateHint))))
	}
	if o.Scenario == "broadcast" && o.Senders == 0 {
		o.Senders = min(o.Conns, max(10, int(math.Ceil(o.Rate/SenderRateHint))))
	}
	if !*quiet {
		o.Progress = stderr
	}
	rep, err := Run(ctx, o)
	if rep != nil {
		rep.WriteSummary(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "chatload: %v\n", err)
		if errors.Is(err, ErrBadOptions) {
			return 2
		}
		return 1
	}
	return 0
}

func workerMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chatload worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	plan := fs.String("plan", "", "plan file written by the parent")
	lo := fs.Int("lo", 0, "first connection")
	hi := fs.Int("hi", 0, "end of the connection range")
	role := fs.String("role", "worker", "name in the report")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := RunWorker(ctx, *plan, *lo, *hi, *role, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "chatload %s: %v\n", *role, err)
		return 1
	}
	return 0
}
