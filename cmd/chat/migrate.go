package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/chatcluster/chat/schema"
)

func init() { commands["migrate"] = runMigrate }

// runMigrate applies the CQL migrations; several may run at once safely.
func runMigrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chat migrate", flag.ContinueOnError)
	hosts := fs.String("cassandra", "127.0.0.1:9042", "Cassandra contact points, comma separated")
	keyspace := fs.String("keyspace", "chat", "keyspace to create and migrate")
	rf := fs.Int("replication-factor", 1, "SimpleStrategy replication factor")
	replication := fs.String("replication", "", "NetworkTopologyStrategy spec, e.g. dc1:3,dc2:3 (overrides --replication-factor)")
	wait := fs.Duration("wait", 5*time.Minute, "how long to keep trying while Cassandra is not reachable")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	deadline := time.Now().Add(*wait)
	for {
		mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := schema.Migrate(mctx, schema.Config{
			Hosts: splitList(*hosts), Keyspace: *keyspace, ReplicationFactor: *rf, Replication: *replication,
			Logf: func(format string, a ...any) { fmt.Printf("chat migrate: "+format+"\n", a...) },
		})
		cancel()
		if err == nil {
			fmt.Printf("chat migrate: keyspace %s at version %d\n", *keyspace, schema.Latest())
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		fmt.Printf("chat migrate: %v; retrying\n", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(3 * time.Second):
		}
	}
}
