package chat

// The names of everything the cluster puts on NATS, spelled here and nowhere
// else. A conversation ID is a decimal or "<lo>-<hi>" (ValidConversationID),
// so it is always exactly one subject token.
const (
	// StreamName is the JetStream stream that holds every message.
	StreamName = "CHAT_MSGS"
	// MsgSubjects is the stream's subject filter: chat.msg.<conversation>.
	MsgSubjects = "chat.msg.*"
	// MsgSubjectPrefix starts a conversation's stream subject.
	MsgSubjectPrefix = "chat.msg."
	// StoreDurable is the store's durable consumer on StreamName.
	StoreDurable = "store"

	// ConvSubjectPrefix starts what gateways subscribe to per conversation:
	// chat.conv.<conversation>.msg, JetStream's republished copy of each
	// stored message, and chat.conv.<conversation>.evt, ephemeral events.
	ConvSubjectPrefix = "chat.conv."
	// ConvMsgSuffix and ConvEvtSuffix are the last token of those subjects.
	ConvMsgSuffix = "msg"
	ConvEvtSuffix = "evt"
	// ConvMsgRepublish is the stream's RePublish destination: JetStream puts
	// each stored record of chat.msg.<c> on chat.conv.<c>.msg.
	ConvMsgRepublish = ConvSubjectPrefix + "{{wildcard(1)}}." + ConvMsgSuffix

	// UserSubjectPrefix starts the core NATS subject of a user's events:
	// chat.user.<userID>.
	UserSubjectPrefix = "chat.user."

	// PresenceSubjectPrefix starts a user's presence announcements:
	// chat.presence.<userID>.
	PresenceSubjectPrefix = "chat.presence."
	// PresenceSyncSubject is where a starting gateway asks the others for
	// their online users.
	PresenceSyncSubject = "chat.presence_sync"
	// HeartbeatSubjects matches every gateway's heartbeat, chat.gw.<instance>.hb.
	HeartbeatSubjects = "chat.gw.*.hb"

	// StoreSubjectPrefix starts every store request subject: chat.store.<op>.
	StoreSubjectPrefix = "chat.store."
	// ConvChangedSubject carries the ID of a conversation whose members a
	// store replica changed, so that every replica drops it from its cache.
	// Not under StoreSubjectPrefix: that is the request queue's.
	ConvChangedSubject = "chat.conv_changed"
	// StoreQueueGroup is the queue group of the store's request
	// subscription, so each request reaches exactly one replica.
	StoreQueueGroup = "store"

	// UserPrefsBucket holds users' "who may add me" settings, their blocks
	// and their group-membership counts (store/consent.go); only the store
	// reads and writes it.
	UserPrefsBucket = "chat_user_prefs"
	// UserCountsBucket holds per-user, per-hour counters of groups created
	// and members added; entries expire after two hours.
	UserCountsBucket = "chat_user_counts"
	// NodeIDBucket is the key-value bucket node numbers are leased from.
	NodeIDBucket = "chat_node_ids"

	// SessionRevokedSubject carries SessionsRevoked: the store publishes on
	// it whenever sessions end, every gateway listens.
	SessionRevokedSubject = "chat.session.revoked"
	// SessionSyncSubject is where a starting gateway asks the others for
	// the sessions revoked within the access token lifetime, which it
	// would otherwise have missed.
	SessionSyncSubject = "chat.session.revoked_sync"
	// TicketBucket is the key-value bucket that makes WebSocket tickets
	// single-use across gateways: the first gateway to create a ticket's
	// key wins, any later use is refused.
	TicketBucket = "chat_ws_tickets"
)

// Headers the cluster sets on NATS messages. JetStream keeps a published
// message's headers on its republished copy, and adds the two Nats-* ones.
const (
	// HdrKind says what a stream record or a conversation event is
	// (EventKind for stream records; "typing" or "read" for events).
	HdrKind = "Chat-Kind"
	// HdrMsgID carries the message ID of a stream record.
	HdrMsgID = "Chat-Msg-Id"
	// HdrSender carries the sender of a stream record.
	HdrSender = "Chat-Sender"
	// HdrNum and HdrNumBase carry a stream record's Number: a message's
	// own, and on an edit, deletion or reaction the conversation's at that
	// point (the last message's), so that the newest record of a subject
	// always tells the next message's number. Absent on records published
	// before numbering.
	HdrNum     = "Chat-Num"
	HdrNumBase = "Chat-Num-Base"
	// HdrUser carries who caused a conversation event.
	HdrUser = "Chat-User"
	// HdrNatsSeq and HdrNatsLastSeq are JetStream's: the republished
	// message's stream sequence and its subject's previous one.
	HdrNatsSeq     = "Nats-Sequence"
	HdrNatsLastSeq = "Nats-Last-Sequence"
)

// MsgSubject is the stream subject of a conversation's messages.
func MsgSubject(conversation string) string { return MsgSubjectPrefix + conversation }

// ConvSubject is what a gateway subscribes to for one conversation: the
// republished stored messages and the ephemeral events.
func ConvSubject(conversation string) string { return ConvSubjectPrefix + conversation + ".*" }

// ConvMsgSubject is where JetStream republishes a conversation's stored
// records (ConvMsgRepublish).
func ConvMsgSubject(conversation string) string {
	return ConvSubjectPrefix + conversation + "." + ConvMsgSuffix
}

// ConvEvtSubject carries a conversation's ephemeral events (typing, read).
func ConvEvtSubject(conversation string) string {
	return ConvSubjectPrefix + conversation + "." + ConvEvtSuffix
}

// UserSubject carries events for one user wherever they are connected.
func UserSubject(user ID) string { return UserSubjectPrefix + user.String() }

// PresenceSubject carries one user's presence announcements.
func PresenceSubject(user ID) string { return PresenceSubjectPrefix + user.String() }

// HeartbeatSubject is one gateway instance's heartbeat subject.
func HeartbeatSubject(instance string) string { return "chat.gw." + instance + ".hb" }

// StoreSubject is the subject of one store request op.
func StoreSubject(op string) string { return StoreSubjectPrefix + op }

// MsgIDHeader is the Nats-Msg-Id of a send: the same sender resending the
// same client_id into the same conversation is deduplicated by JetStream.
func MsgIDHeader(conversation string, sender ID, clientID string) string {
	return conversation + "/" + sender.String() + "/" + clientID
}

// ChangeIDHeader is the Nats-Msg-Id of an edit, deletion or reaction: the
// same user resending the same client_id for the same kind of change into
// the same conversation is deduplicated, apart from sends' client_ids.
func ChangeIDHeader(conversation string, user ID, kind EventKind, clientID string) string {
	return conversation + "/" + user.String() + "/" + string(kind) + "/" + clientID
}

// Push notifications (chat push).
const (
	// PushDurable is the push service's durable consumer on StreamName.
	PushDurable = "push"
	// PushSentBucket is the key-value bucket of notifications already sent,
	// keyed PushSentKey(message, device), so a redelivered message (after a
	// crash) does not notify a device twice.
	PushSentBucket = "chat_push_sent"
)

// PushSentKey is the dedup key of one notification: a message to a device.
func PushSentKey(msg ID, deviceID string) string { return msg.String() + "." + deviceID }
