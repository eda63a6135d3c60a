// Package gateway holds the clients' connections: the HTTP API and the
// WebSocket endpoint of docs/PROTOCOL.md on one port. Connections are driven
// by epoll (gateway/netpoll) and a bounded worker pool (gateway/workers): an
// idle connection holds no goroutine and no buffer. The gateway knows
// nothing of the database; everything it needs it asks of NATS, through the
// router (messages, events, presence) and the store's client (queries).
//
// Where things are:
//
//	start.go       Start: a gateway assembled as every process runs one
//	server.go      Server: accept, handshake, upgrade, keepalive, drain
//	conn.go        Conn: one WebSocket: frames in, write queue out
//	hub.go         the one fan-out registry: connections, rooms, members
//	frame.go       server frames, built once per fan-out
//	handlers.go    the WebSocket requests: send, history, read, typing, ping
//	http.go        the HTTP API under /api/v1, health, metrics
//	auth.go        tokens and password hashes
//	hello.go       conversations as one reader sees them; the hello frame
//	usercache.go   users by ID, cached
//	userevents.go  a local user added to a conversation
//	presence.go    presence frames to those who share a conversation
//	metrics.go     the gateway's Prometheus metrics
package gateway
