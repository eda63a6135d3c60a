//go:build tools

package chat

import (
	_ "github.com/coder/websocket"
	_ "github.com/gobwas/ws"
	_ "github.com/gobwas/ws/wsutil"
	_ "github.com/gocql/gocql"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "go.etcd.io/bbolt"
	_ "go.uber.org/goleak"
	_ "go.uber.org/zap"
	_ "golang.org/x/crypto/argon2"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/time/rate"
	_ "github.com/oklog/run"
)
