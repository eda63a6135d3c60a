// Package store owns the chat's durable state: accounts, conversations,
// membership, messages, read marks. It defines the Backend interface that the
// embedded (bbolt) and Cassandra backends implement and that one conformance
// suite (store/storetest) holds them to, and the Service that serves a backend
// over NATS: it consumes the message stream with a durable JetStream consumer
// and answers queries by request/reply. Gateways reach it with
// storeclient.Client.
//
// The files, by job:
//
//   - store.go: the Backend interface.
//   - process.go: Start assembles a store process from its parts (NATS,
//     JetStream, a node-ID lease, a backend, metrics) the same way for
//     `chat store`, `chat dev` and the tests.
//   - service.go: the Service's configuration and lifecycle (NewService,
//     Run, Shutdown, Ready).
//   - handle.go: the op table of the request/reply API and the one generic
//     decode step every op shares; accounts.go and conversations.go hold
//     the ops themselves.
//   - floor.go: read-your-writes, so that a history page includes every
//     message acked before it was asked for.
//   - ingest.go: the stream ingest (consume, batch, write, ack) and
//     kinds.go, the table that sends each kind of stream record
//     (chat.EventKind) to its writer.
//   - metrics.go: the Prometheus collectors and the instrumented Backend.
package store
