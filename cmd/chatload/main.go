// Command chatload is the chat server's load generator; see loadtest/README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/chatcluster/chat/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := loadtest.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
