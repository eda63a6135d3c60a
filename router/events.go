package router

import (
	"fmt"

	"github.com/chatcluster/chat/store"
	"github.com/nats-io/nats.go"
)

const (
	hdrKind    = "Chat-Kind"
	hdrUser    = "Chat-User"
	kindTyping = "typing"
	kindRead   = "read"
)

// PublishTyping tells every gateway with members of conv that user is
// typing. payload is the client frame's JSON, sent as it is.
func PublishTyping(nc *nats.Conn, conv string, user store.ID, payload []byte) error {
	return publishEvent(nc, conv, kindTyping, user, payload)
}

// PublishRead tells every gateway with members of conv that user moved
// their read mark. payload is the client frame's JSON.
func PublishRead(nc *nats.Conn, conv string, user store.ID, payload []byte) error {
	return publishEvent(nc, conv, kindRead, user, payload)
}

func publishEvent(nc *nats.Conn, conv, kind string, user store.ID, payload []byte) error {
	m := &nats.Msg{Subject: convEvtSubject(conv), Data: payload, Header: nats.Header{}}
	m.Header.Set(hdrKind, kind)
	m.Header.Set(hdrUser, user.String())
	if err := nc.PublishMsg(m); err != nil {
		return fmt.Errorf("router: %s event: %w", kind, err)
	}
	return nil
}
