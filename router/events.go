package router

import (
	"fmt"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go"
)

const (
	kindTyping = "typing"
	kindRead   = "read"
)

// PublishTyping tells every gateway with members of conv that user is
// typing. payload is the client frame's JSON, sent as it is.
func PublishTyping(nc *nats.Conn, conv string, user chat.ID, payload []byte) error {
	return publishEvent(nc, conv, kindTyping, user, payload)
}

// PublishRead tells every gateway with members of conv that user moved
// their read mark. payload is the client frame's JSON.
func PublishRead(nc *nats.Conn, conv string, user chat.ID, payload []byte) error {
	return publishEvent(nc, conv, kindRead, user, payload)
}

func publishEvent(nc *nats.Conn, conv, kind string, user chat.ID, payload []byte) error {
	m := &nats.Msg{Subject: chat.ConvEvtSubject(conv), Data: payload, Header: nats.Header{}}
	m.Header.Set(chat.HdrKind, kind)
	m.Header.Set(chat.HdrUser, user.String())
	if err := nc.PublishMsg(m); err != nil {
		return fmt.Errorf("router: %s event: %w", kind, err)
	}
	return nil
}
