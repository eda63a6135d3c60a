// Package router is the NATS side of the chat, and only that: the JetStream
// stream that makes a message durable (EnsureStream), the publisher that
// assigns ordered IDs and awaits the PubAck (Publisher), the feed that holds
// one NATS subscription per conversation and turns what arrives into events
// in stream order (Feed), ephemeral conversation events (typing, read),
// presence across gateways (Presence), and node-ID leases (AcquireNodeID).
// Who is connected where and what their frames look like is the gateway's.
// Subject names are the root package's (chat/subjects.go).
package router
