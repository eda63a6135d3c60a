// Package router is the NATS side of the chat: subject names keyed by
// conversation, the JetStream stream that makes a message durable, the
// publisher that assigns ordered IDs and awaits the PubAck, the interest
// table that holds one NATS subscription per conversation per gateway and
// fans a received message out to every local subscriber with its WebSocket
// frame encoded once, presence, and node-ID leases.
package router

import "github.com/chatcluster/chat/store"

// Stream and subject names. A conversation ID is a decimal or "<lo>-<hi>"
// (store.ValidConversationID), so it is always one subject token.
const (
	// StreamName is the JetStream stream that holds every message.
	StreamName = "CHAT_MSGS"
	// MsgSubjects is the stream's subject filter: chat.msg.<conversation>.
	MsgSubjects = "chat.msg.*"
	// StoreDurable is the store's durable consumer on StreamName.
	StoreDurable = "store"

	msgPrefix      = "chat.msg."
	convPrefix     = "chat.conv."
	presencePrefix = "chat.presence."
	heartbeatAll   = "chat.gw.*.hb"
	presenceSync   = "chat.presence_sync"

	// Headers we set on a published message; JetStream keeps them on the
	// republished copy.
	hdrMsgID    = "Chat-Msg-Id"
	hdrSender   = "Chat-Sender"
	hdrNatsSeq  = "Nats-Sequence"
	hdrNatsLast = "Nats-Last-Sequence"
)

// MsgSubject is the stream subject of a conversation's messages.
func MsgSubject(conversation string) string { return msgPrefix + conversation }

// ConvSubject is what a gateway subscribes to for one conversation: the
// republished stored messages (.msg) and ephemeral events (.evt).
func ConvSubject(conversation string) string { return convPrefix + conversation + ".*" }

func convEvtSubject(conversation string) string { return convPrefix + conversation + ".evt" }

// UserSubject carries events for one user wherever they are connected
// (a conversation they were added to). The store publishes on it, so its
// name is the store's.
func UserSubject(user store.ID) string { return store.UserSubject(user) }

func heartbeatSubject(instance string) string { return "chat.gw." + instance + ".hb" }

// MsgIDHeader is the Nats-Msg-Id of a send: the same sender resending the
// same client_id into the same conversation is deduplicated by JetStream.
func MsgIDHeader(conversation string, sender store.ID, clientID string) string {
	return conversation + "/" + sender.String() + "/" + clientID
}
