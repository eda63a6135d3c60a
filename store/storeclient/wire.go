package storeclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chatcluster/chat"
)

// The wire format of the store's request/reply protocol, which the store's
// Service answers and Client calls. Every op is a NATS request on subject
// chat.StoreSubject(op) with a JSON body; the reply is the op's response JSON
// or an ErrorReply.

// The ops (the last token of the subject).
const (
	OpSignup        = "signup"
	OpAccount       = "account"
	OpLogin         = "login"
	OpUsers         = "users"
	OpSearch        = "search"
	OpDirect        = "direct"
	OpGroup         = "group"
	OpAddMembers    = "add_members"
	OpConversation  = "conversation"
	OpConversations = "conversations"
	OpHistory       = "history"
	OpRead          = "read"
	OpMessage       = "message"
	OpChanges       = "changes"

	OpSessionCreate  = "session_create"
	OpSessionRefresh = "session_refresh"
	OpSessions       = "sessions"
	OpSessionEnd     = "session_end"
	OpSessionsEnd    = "sessions_end"
	OpPassword       = "password"
	OpMembers        = "members"
	OpMembership     = "membership"
	OpLeave          = "leave"
	OpAddPolicy      = "add_policy"
	OpSetAddPolicy   = "set_add_policy"
	OpBlock          = "block"
	OpBlocks         = "blocks"
)

// SessionOps are the session ops, for metrics that list every op.
var SessionOps = []string{OpSessionCreate, OpSessionRefresh, OpSessions, OpSessionEnd, OpSessionsEnd, OpPassword}

// ErrInternal is what a Client returns (wrapped) for a reply with code
// "internal": the store failed for a reason the caller cannot act on.
var ErrInternal = errors.New("store: internal error")

// Error codes on the wire, one per sentinel error.
const (
	CodeNotFound      = "not_found"
	CodeUsernameTaken = "username_taken"
	CodeInvalid       = "invalid"
	CodeUnavailable   = "unavailable"
	CodeTooMany       = "too_many"
	CodeConflict      = "conflict"
	CodeRevoked       = "revoked"
	CodeWrongPassword = "wrong_password"
	CodeNotAllowed    = "not_allowed"
	CodeLimited       = "limited"
	CodeInternal      = "internal"
)

// SignupRequest creates an account. A zero Account.ID is assigned by the
// service; a zero CreatedAt is set to now. chat.ErrUsernameTaken if the (lower
// cased) username exists.
type SignupRequest struct {
	Account chat.Account `json:"account"`
}

// SignupResponse carries the created user.
type SignupResponse struct {
	User chat.User `json:"user"`
}

// AccountRequest looks an account up by username (folded to lower case).
type AccountRequest struct {
	Username string `json:"username"`
}

// AccountResponse carries the account without its password hash: a hash
// never leaves the store (OpLogin checks a password there).
type AccountResponse struct {
	Account chat.Account `json:"account"`
}

// LoginRequest asks the store to check a password. The reply is a
// LoginResponse, or chat.ErrWrongPassword for an unknown username and a
// wrong password alike, after the same work (an unknown user is checked
// against a dummy hash).
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// LoginResponse carries the user whose password matched.
type LoginResponse struct {
	User chat.User `json:"user"`
}

// UsersRequest asks for users by ID.
type UsersRequest struct {
	IDs []chat.ID `json:"ids"`
}

// UsersResponse carries the users that exist, in the order asked.
type UsersResponse struct {
	Users []chat.User `json:"users"`
}

// SearchRequest asks for users whose username starts with Prefix.
type SearchRequest struct {
	Prefix string `json:"prefix"`
	Limit  int    `json:"limit"`
}

// SearchResponse carries the users found, ordered by username.
type SearchResponse struct {
	Users []chat.User `json:"users"`
}

// DirectRequest asks for the direct conversation of A and B, created when
// missing (ID DirectID(A, B)).
type DirectRequest struct {
	A chat.ID `json:"a"`
	B chat.ID `json:"b"`
}

// DirectResponse carries the conversation and whether this call created it.
type DirectResponse struct {
	Conversation chat.Conversation `json:"conversation"`
	Created      bool              `json:"created"`
}

// GroupRequest creates a group conversation; Creator becomes a member.
type GroupRequest struct {
	Title   string    `json:"title"`
	Creator chat.ID   `json:"creator"`
	Members []chat.ID `json:"members"`
}

// GroupResponse carries the new conversation.
type GroupResponse struct {
	Conversation chat.Conversation `json:"conversation"`
}

// AddMembersRequest adds Users to a group; By must be a member.
type AddMembersRequest struct {
	Conversation string    `json:"conversation"`
	By           chat.ID   `json:"by"`
	Users        []chat.ID `json:"users"`
}

// AddMembersResponse carries the conversation after the change and the
// users that were not members before.
type AddMembersResponse struct {
	Conversation chat.Conversation `json:"conversation"`
	Added        []chat.ID         `json:"added"`
}

// ConversationRequest asks for one conversation with its members.
type ConversationRequest struct {
	ID string `json:"id"`
}

// ConversationResponse carries the conversation.
type ConversationResponse struct {
	Conversation chat.Conversation `json:"conversation"`
}

// ConversationsRequest asks for a page of a user's conversation list:
// entries after the cursor (AfterActivity, AfterConversation), none for
// the top (chat.ListPage).
type ConversationsRequest struct {
	User              chat.ID   `json:"user"`
	Limit             int       `json:"limit"`
	AfterActivity     time.Time `json:"after_activity,omitzero"`
	AfterConversation string    `json:"after_conversation,omitempty"`
}

// ConversationsResponse carries the page, most recent activity first, and
// whether more entries follow (the last entry is the next cursor). A page
// is bounded in bytes too (chat.MaxPageBytes), so it may end early.
type ConversationsResponse struct {
	Summaries []chat.Summary `json:"summaries"`
	More      bool           `json:"more"`
}

// MembersRequest asks for a page of a conversation's members above After
// on behalf of By, who must be a member.
type MembersRequest struct {
	Conversation string  `json:"conversation"`
	By           chat.ID `json:"by"`
	After        chat.ID `json:"after"`
	Limit        int     `json:"limit"`
}

// MembersResponse carries the member IDs, ascending, whether more follow,
// and the conversation's member count.
type MembersResponse struct {
	Members []chat.ID `json:"members"`
	More    bool      `json:"more"`
	Count   int       `json:"count"`
}

// MembershipRequest asks whether User is a member of Conversation.
type MembershipRequest struct {
	Conversation string  `json:"conversation"`
	User         chat.ID `json:"user"`
}

// MembershipResponse carries the conversation (members inline only when
// small) and whether the user is a member. ErrNotFound for an unknown
// conversation.
type MembershipResponse struct {
	Conversation chat.Conversation `json:"conversation"`
	Member       bool              `json:"member"`
}

// HistoryRequest asks for one page of history (see Page). Zero IDs mean
// "not set".
type HistoryRequest struct {
	Conversation string  `json:"conversation"`
	Before       chat.ID `json:"before"`
	After        chat.ID `json:"after"`
	Limit        int     `json:"limit"`
	// Viewer is who reads: their own reactions are marked. 0: nobody.
	Viewer chat.ID `json:"viewer,omitempty"`
}

// HistoryResponse carries the page and whether more messages lie beyond it.
type HistoryResponse struct {
	Messages []chat.Message `json:"messages"`
	More     bool           `json:"more"`
}

// MessageRequest asks for one message as Viewer sees it, once the store has
// everything the stream held for the conversation (read-your-writes).
type MessageRequest struct {
	Conversation string  `json:"conversation"`
	ID           chat.ID `json:"id"`
	Viewer       chat.ID `json:"viewer"`
}

// MessageResponse carries the message.
type MessageResponse struct {
	Message chat.Message `json:"message"`
}

// ChangesRequest asks for the conversation's changes after the change
// cursor After (read-your-writes, as history).
type ChangesRequest struct {
	Conversation string  `json:"conversation"`
	After        chat.ID `json:"after"`
	Limit        int     `json:"limit"`
	Viewer       chat.ID `json:"viewer"`
}

// ChangesResponse carries the changes, each with its message as it is now,
// and whether more lie beyond them.
type ChangesResponse struct {
	Changes []chat.Change `json:"changes"`
	More    bool          `json:"more"`
}

// ReadRequest moves User's read mark in Conversation forward to MessageID.
type ReadRequest struct {
	Conversation string  `json:"conversation"`
	User         chat.ID `json:"user"`
	MessageID    chat.ID `json:"message_id"`
}

// ReadResponse carries the mark after the call and whether it moved.
type ReadResponse struct {
	Mark  chat.ID `json:"mark"`
	Moved bool    `json:"moved"`
}

// SessionCreateRequest starts a session. The service assigns ID and
// CreatedAt (and LastSeen); ExpiresAt and RefreshHash come from the caller.
// Beyond the user's MaxSessions the least recently seen ones end.
type SessionCreateRequest struct {
	Session chat.Session `json:"session"`
}

// SessionResponse carries a session, without its refresh hash.
type SessionResponse struct {
	Session chat.Session `json:"session"`
}

// SessionRefreshRequest presents the refresh token of generation Generation
// of session ID (by its hash) and asks to move to NewHash. The service
// answers the session after the rotation; chat.ErrRevoked when Generation
// is a retired one (the session is then ended), chat.ErrNotFound when the
// session is gone or the hash does not match.
type SessionRefreshRequest struct {
	ID         chat.ID `json:"id"`
	Generation uint32  `json:"generation"`
	Hash       []byte  `json:"hash"`
	NewHash    []byte  `json:"new_hash"`
}

// SessionsRequest lists a user's sessions.
type SessionsRequest struct {
	User chat.ID `json:"user"`
}

// SessionsResponse carries a user's live sessions, without refresh hashes.
type SessionsResponse struct {
	Sessions []chat.Session `json:"sessions"`
}

// SessionEndRequest ends one of User's sessions. chat.ErrNotFound when
// User has no such session.
type SessionEndRequest struct {
	User chat.ID `json:"user"`
	ID   chat.ID `json:"id"`
}

// SessionsEndRequest ends every session of User but Except (0: all).
type SessionsEndRequest struct {
	User   chat.ID `json:"user"`
	Except chat.ID `json:"except"`
}

// SessionsEndResponse names the sessions ended.
type SessionsEndResponse struct {
	Ended []chat.ID `json:"ended"`
}

// PasswordRequest replaces the password hash of Username (whose ID is
// User) and ends every session of the user but Keep, if Current is the
// present password (chat.ErrWrongPassword otherwise: the store checks).
type PasswordRequest struct {
	User     chat.ID `json:"user"`
	Username string  `json:"username"`
	Current  string  `json:"current"`
	Hash     string  `json:"hash"`
	Keep     chat.ID `json:"keep"`
}

// Empty is the reply of ops that answer nothing but success.
type Empty struct{}

// ErrorReply is the reply to a request that failed.
type ErrorReply struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody names the failure: Code is one of the Code* constants.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// UserEvent is published on chat.user.<id> to every member of a
// conversation that was created or whose members changed (Type
// EventConversation), and to a user who left one (EventLeft, Conversation
// holding only its ID).
type UserEvent struct {
	Type         string             `json:"type"`
	Conversation *chat.Conversation `json:"conversation,omitempty"`
}

// The types of UserEvent.
const (
	EventConversation = "conversation"
	EventLeft         = "left"
)

// LeaveRequest takes User out of a group conversation.
type LeaveRequest struct {
	Conversation string  `json:"conversation"`
	User         chat.ID `json:"user"`
}

// LeaveResponse says the user is no longer a member.
type LeaveResponse struct {
	Left bool `json:"left"`
}

// RemoteError is an error the store service answered with. It unwraps to the
// sentinel of its code, so errors.Is(err, chat.ErrNotFound) works across the wire.
type RemoteError struct {
	Code    string
	Message string
}

func (e *RemoteError) Error() string {
	if e.Message == "" {
		return "store: remote error " + e.Code
	}
	return e.Message
}

// Unwrap returns the sentinel error of the code.
func (e *RemoteError) Unwrap() error { return sentinelOf(e.Code) }

// ErrorCode returns the wire code of err: the code of the first sentinel
// error err wraps, CodeInternal for anything else.
func ErrorCode(err error) string {
	switch {
	case errors.Is(err, chat.ErrNotFound):
		return CodeNotFound
	case errors.Is(err, chat.ErrUsernameTaken):
		return CodeUsernameTaken
	case errors.Is(err, chat.ErrInvalid):
		return CodeInvalid
	case errors.Is(err, chat.ErrUnavailable):
		return CodeUnavailable
	case errors.Is(err, chat.ErrTooMany):
		return CodeTooMany
	case errors.Is(err, chat.ErrConflict):
		return CodeConflict
	case errors.Is(err, chat.ErrRevoked):
		return CodeRevoked
	case errors.Is(err, chat.ErrWrongPassword):
		return CodeWrongPassword
	case errors.Is(err, chat.ErrNotAllowed):
		return CodeNotAllowed
	case errors.Is(err, chat.ErrLimited):
		return CodeLimited
	default:
		return CodeInternal
	}
}

func sentinelOf(code string) error {
	switch code {
	case CodeNotFound:
		return chat.ErrNotFound
	case CodeUsernameTaken:
		return chat.ErrUsernameTaken
	case CodeInvalid:
		return chat.ErrInvalid
	case CodeUnavailable:
		return chat.ErrUnavailable
	case CodeTooMany:
		return chat.ErrTooMany
	case CodeConflict:
		return chat.ErrConflict
	case CodeRevoked:
		return chat.ErrRevoked
	case CodeWrongPassword:
		return chat.ErrWrongPassword
	case CodeNotAllowed:
		return chat.ErrNotAllowed
	case CodeLimited:
		return chat.ErrLimited
	default:
		return ErrInternal
	}
}

// errorPrefix is how every ErrorReply begins (encoding/json keeps field
// order), so a Client tells an error from a response without decoding the
// body twice. No response type has a field named "error".
const errorPrefix = `{"error":`

// EncodeError renders err as an ErrorReply body.
// The text of an internal error stays in the service's log: it may name
// hosts or queries that callers have no business seeing.
func EncodeError(err error) []byte {
	code := ErrorCode(err)
	msg := err.Error()
	if code == CodeInternal {
		msg = ErrInternal.Error()
	}
	b, mErr := json.Marshal(ErrorReply{Error: ErrorBody{Code: code, Message: msg}})
	if mErr != nil {
		// Marshalling two strings cannot fail; keep a valid reply regardless.
		return []byte(`{"error":{"code":"internal","message":"store: encoding error"}}`)
	}
	return b
}

// decodeReply decodes a reply body into resp or returns the RemoteError it
// carries.
func decodeReply(data []byte, resp any) error {
	if len(data) >= len(errorPrefix) && string(data[:len(errorPrefix)]) == errorPrefix {
		var er ErrorReply
		if err := json.Unmarshal(data, &er); err != nil {
			return fmt.Errorf("%w: bad error reply: %v", ErrInternal, err)
		}
		return &RemoteError{Code: er.Error.Code, Message: er.Error.Message}
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("%w: bad reply: %v", ErrInternal, err)
	}
	return nil
}

// Ops of push notifications (devices, mutes, what a notifier reads).
const (
	OpPutDevice    = "put_device"
	OpDevices      = "devices"
	OpDeleteDevice = "delete_device"
	OpMute         = "mute"
	OpMemberStates = "member_states"
)

// PutDeviceRequest registers Device for Device.User (see
// store.PushBackend.PutDevice). A zero CreatedAt is set to now.
type PutDeviceRequest struct {
	Device chat.Device `json:"device"`
}

// PutDeviceResponse carries the stored device.
type PutDeviceResponse struct {
	Device chat.Device `json:"device"`
}

// DevicesRequest asks for the devices of Users (at most the service's
// MaxIDs).
type DevicesRequest struct {
	Users []chat.ID `json:"users"`
}

// DevicesResponse carries the devices of every user asked, by user then
// token.
type DevicesResponse struct {
	Devices []chat.Device `json:"devices"`
}

// DeleteDeviceRequest removes User's device with Token; an empty Token
// removes all of User's devices (log-out everywhere).
type DeleteDeviceRequest struct {
	User  chat.ID `json:"user"`
	Token string  `json:"token"`
}

// DeleteDeviceResponse carries how many devices were removed.
type DeleteDeviceResponse struct {
	Removed int `json:"removed"`
}

// MuteRequest mutes or unmutes Conversation for User, a member.
type MuteRequest struct {
	Conversation string  `json:"conversation"`
	User         chat.ID `json:"user"`
	Muted        bool    `json:"muted"`
}

// MuteResponse acknowledges a MuteRequest.
type MuteResponse struct {
	Muted bool `json:"muted"`
}

// MemberStatesRequest asks for every member's read mark and mute.
type MemberStatesRequest struct {
	Conversation string `json:"conversation"`
}

// MemberStatesResponse carries them, ascending by user.
type MemberStatesResponse struct {
	Members []chat.MemberState `json:"members"`
}

// AddPolicy is who may add a user to a group (docs/PROTOCOL.md).
type AddPolicy string

const (
	AddAnyone   AddPolicy = "anyone"   // any user (the default)
	AddContacts AddPolicy = "contacts" // users of a direct conversation one started or read in
	AddNobody   AddPolicy = "nobody"   // no one: only oneself, by creating a group
)

// Valid reports whether p is one of the policies.
func (p AddPolicy) Valid() bool { return p == AddAnyone || p == AddContacts || p == AddNobody }

// AddPolicyRequest asks a user's policy; SetAddPolicyRequest sets it.
type AddPolicyRequest struct {
	User chat.ID `json:"user"`
}

// SetAddPolicyRequest sets User's policy.
type SetAddPolicyRequest struct {
	User   chat.ID   `json:"user"`
	Policy AddPolicy `json:"policy"`
}

// AddPolicyResponse carries a user's policy.
type AddPolicyResponse struct {
	Policy AddPolicy `json:"policy"`
}

// BlockRequest blocks (On) or unblocks Target for User.
type BlockRequest struct {
	User   chat.ID `json:"user"`
	Target chat.ID `json:"target"`
	On     bool    `json:"on"`
}

// BlocksRequest lists User's blocks; with Target set, it asks whether
// either of User and Target blocks the other.
type BlocksRequest struct {
	User   chat.ID `json:"user"`
	Target chat.ID `json:"target,omitempty"`
}

// BlocksResponse lists the users User blocks, ascending (at most
// MaxBlocks); Either answers a request with a Target.
type BlocksResponse struct {
	Blocked []chat.ID `json:"blocked"`
	Either  bool      `json:"either,omitempty"`
}

// MaxBlocks bounds the users one user may block.
const MaxBlocks = 1000
