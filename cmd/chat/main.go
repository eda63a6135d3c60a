// Command chat is the chat cluster in one binary:
//
//	chat dev       everything in one process, for a first run and development
//	chat gateway   a WebSocket gateway (stateless; talks to NATS only)
//	chat store     a store (consumes the message stream into Cassandra)
//	chat migrate   applies the Cassandra schema
//
// Every flag has an environment twin: --jwt-secret is CHAT_JWT_SECRET.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

var commands = map[string]func(ctx context.Context, args []string) error{
	"dev": runDev,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: chat dev|gateway|store|migrate [flags]   (chat COMMAND -h for flags)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := commands[os.Args[1]](ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "chat %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
