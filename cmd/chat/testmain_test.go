package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: every
// dev server a test starts must be fully stopped by its Close.
//
// No goleak ignores are needed: startDev's embedded nats-server (started
// with DontListen and NoSigs, connected in process) ends all of its
// goroutines in Shutdown+WaitForShutdown, and the tests close their HTTP
// transports' idle connections and wait for their WebSocket readers. Add
// an ignore here only for a goroutine proven to outlive a clean Close,
// with the reason.
//
// One is: gocql handles a schema event (the cluster and ring tests' DROP
// KEYSPACE) in a goroutine that a closed session does not wait for; on the
// three-node ring it waits for schema agreement and outlives the test
// (TestRing, measured), then ends by itself at gocql's agreement timeout.
// store/cassandra ignores the same goroutine for the same reason.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/gocql/gocql.(*Session).handleSchemaEvent"))
}
