// Package loadtest is the chat cluster's load generator: it signs users up
// through the HTTP API, holds many authenticated WebSocket connections open
// and drives the scenarios idle, chat and broadcast against a server on
// loopback, measuring connect rate, ack latency, end-to-end latency,
// deliveries, errors, the gateway's memory per connection and its own CPU
// (so that a run can tell when the generator itself was the bottleneck).
//
// cmd/chatload is its command-line front end; Main holds the flag parsing so
// that --procs can re-execute the same binary as worker processes.
package loadtest
