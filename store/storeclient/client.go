package storeclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go"
)

// DefaultClientTimeout bounds a Client call whose ctx has no earlier
// deadline. It exceeds DefaultHistoryWait so that a history request that
// waits for the store to catch up gets its answer.
const DefaultClientTimeout = 5 * time.Second

// ClientConfig configures a Client.
type ClientConfig struct {
	// Timeout bounds each call (default DefaultClientTimeout).
	Timeout time.Duration
}

// Client calls a store Service over NATS request/reply. It holds no state
// besides the connection and is safe for concurrent use.
//
// Errors the service answered with unwrap to the sentinel errors of this
// package (chat.ErrNotFound, chat.ErrUsernameTaken, chat.ErrInvalid, chat.ErrUnavailable,
// chat.ErrTooMany, ErrInternal). No responder, a timeout or a lost connection is
// chat.ErrUnavailable.
type Client struct {
	nc      *nats.Conn
	timeout time.Duration
}

// NewClient returns a Client that sends its requests over nc.
func NewClient(nc *nats.Conn, cfg ClientConfig) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultClientTimeout
	}
	return &Client{nc: nc, timeout: cfg.Timeout}
}

// call sends req to op and decodes the reply into resp.
func (c *Client) call(ctx context.Context, op string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%w: encode %s request: %v", chat.ErrInvalid, op, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	msg, err := c.nc.RequestWithContext(ctx, chat.StoreSubject(op), body)
	if err != nil {
		// Every transport failure means "no store answered": the caller may
		// retry; %w twice keeps context.Canceled visible too.
		return fmt.Errorf("%w: %s: %w", chat.ErrUnavailable, op, err)
	}
	if err := decodeReply(msg.Data, resp); err != nil {
		var re *RemoteError
		if errors.As(err, &re) {
			return err
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// signupAttempts bounds the tries of one Signup.
const signupAttempts = 3

// Signup creates an account and returns its user. The service assigns the
// ID when a.ID is zero. chat.ErrUsernameTaken, chat.ErrInvalid.
//
// A sign-up whose outcome is unknown (chat.ErrUnavailable: no answer in
// time, or the database's answer was lost) is tried again with the same
// request, up to signupAttempts times while ctx lasts: the store knows a
// retry by its salted password hash and answers the account the first
// attempt made, so a retry never yields a second account nor "username
// taken".
func (c *Client) Signup(ctx context.Context, a chat.Account) (chat.User, error) {
	var (
		resp SignupResponse
		err  error
	)
	for attempt := range signupAttempts {
		if attempt > 0 {
			t := time.NewTimer(time.Duration(attempt) * 100 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return chat.User{}, err
			case <-t.C:
			}
		}
		if err = c.call(ctx, OpSignup, SignupRequest{Account: a}, &resp); err == nil {
			return resp.User, nil
		}
		if !errors.Is(err, chat.ErrUnavailable) || ctx.Err() != nil {
			break
		}
	}
	return chat.User{}, err
}

// Login checks username's password in the store and returns the user.
// chat.ErrWrongPassword for an unknown user or a wrong password.
func (c *Client) Login(ctx context.Context, username, password string) (chat.User, error) {
	var resp LoginResponse
	if err := c.call(ctx, OpLogin, LoginRequest{Username: username, Password: password}, &resp); err != nil {
		return chat.User{}, err
	}
	return resp.User, nil
}

// Account returns the account of a username, without its password hash.
// chat.ErrNotFound.
func (c *Client) Account(ctx context.Context, username string) (chat.Account, error) {
	var resp AccountResponse
	if err := c.call(ctx, OpAccount, AccountRequest{Username: username}, &resp); err != nil {
		return chat.Account{}, err
	}
	return resp.Account, nil
}

// Users returns the users with these IDs that exist, in the order asked.
func (c *Client) Users(ctx context.Context, ids []chat.ID) ([]chat.User, error) {
	var resp UsersResponse
	if err := c.call(ctx, OpUsers, UsersRequest{IDs: ids}, &resp); err != nil {
		return nil, err
	}
	return resp.Users, nil
}

// Search returns up to limit users whose username starts with prefix.
func (c *Client) Search(ctx context.Context, prefix string, limit int) ([]chat.User, error) {
	var resp SearchResponse
	if err := c.call(ctx, OpSearch, SearchRequest{Prefix: prefix, Limit: limit}, &resp); err != nil {
		return nil, err
	}
	return resp.Users, nil
}

// Direct returns the direct conversation of a and b, creating it when
// missing, and whether this call created it. chat.ErrNotFound for an unknown
// user, chat.ErrInvalid when a == b.
func (c *Client) Direct(ctx context.Context, a, b chat.ID) (chat.Conversation, bool, error) {
	var resp DirectResponse
	if err := c.call(ctx, OpDirect, DirectRequest{A: a, B: b}, &resp); err != nil {
		return chat.Conversation{}, false, err
	}
	return resp.Conversation, resp.Created, nil
}

// Group creates a group conversation of creator and members. chat.ErrNotFound
// for an unknown member, chat.ErrTooMany above the service's member limit.
func (c *Client) Group(ctx context.Context, title string, creator chat.ID, members []chat.ID) (chat.Conversation, error) {
	var resp GroupResponse
	if err := c.call(ctx, OpGroup, GroupRequest{Title: title, Creator: creator, Members: members}, &resp); err != nil {
		return chat.Conversation{}, err
	}
	return resp.Conversation, nil
}

// AddMembers adds users to a group on behalf of member by and returns the
// conversation after the change and the users newly added. chat.ErrNotFound
// unless by is a member or for an unknown user.
func (c *Client) AddMembers(ctx context.Context, conversation string, by chat.ID, users []chat.ID) (chat.Conversation, []chat.ID, error) {
	var resp AddMembersResponse
	if err := c.call(ctx, OpAddMembers, AddMembersRequest{Conversation: conversation, By: by, Users: users}, &resp); err != nil {
		return chat.Conversation{}, nil, err
	}
	return resp.Conversation, resp.Added, nil
}

// Conversation returns a conversation with its members. chat.ErrNotFound.
func (c *Client) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	var resp ConversationResponse
	if err := c.call(ctx, OpConversation, ConversationRequest{ID: id}, &resp); err != nil {
		return chat.Conversation{}, err
	}
	return resp.Conversation, nil
}

// Conversations lists up to limit of a user's conversations, the most recent
// activity first.
func (c *Client) Conversations(ctx context.Context, user chat.ID, limit int) ([]chat.Summary, error) {
	var resp ConversationsResponse
	if err := c.call(ctx, OpConversations, ConversationsRequest{User: user, Limit: limit}, &resp); err != nil {
		return nil, err
	}
	return resp.Summaries, nil
}

// ConversationPage returns a page of a user's conversation list after p's
// cursor and whether more entries follow.
func (c *Client) ConversationPage(ctx context.Context, user chat.ID, p chat.ListPage) ([]chat.Summary, bool, error) {
	var resp ConversationsResponse
	req := ConversationsRequest{User: user, Limit: p.Limit, AfterActivity: p.Activity, AfterConversation: p.Conversation}
	if err := c.call(ctx, OpConversations, req, &resp); err != nil {
		return nil, false, err
	}
	return resp.Summaries, resp.More, nil
}

// Members returns a page of a conversation's member IDs above after on
// behalf of member by, whether more follow, and the member count.
// chat.ErrNotFound unless by is a member.
func (c *Client) Members(ctx context.Context, conversation string, by, after chat.ID, limit int) ([]chat.ID, bool, int, error) {
	var resp MembersResponse
	req := MembersRequest{Conversation: conversation, By: by, After: after, Limit: limit}
	if err := c.call(ctx, OpMembers, req, &resp); err != nil {
		return nil, false, 0, err
	}
	return resp.Members, resp.More, resp.Count, nil
}

// Membership returns a conversation (members inline only when small) and
// whether user is a member of it. chat.ErrNotFound for none.
func (c *Client) Membership(ctx context.Context, conversation string, user chat.ID) (chat.Conversation, bool, error) {
	var resp MembershipResponse
	if err := c.call(ctx, OpMembership, MembershipRequest{Conversation: conversation, User: user}, &resp); err != nil {
		return chat.Conversation{}, false, err
	}
	return resp.Conversation, resp.Member, nil
}

// Leave takes user out of a group. chat.ErrNotFound unless user is a
// member, chat.ErrInvalid for a direct conversation.
func (c *Client) Leave(ctx context.Context, conversation string, user chat.ID) error {
	var resp LeaveResponse
	return c.call(ctx, OpLeave, LeaveRequest{Conversation: conversation, User: user}, &resp)
}

// History returns one page of a conversation's history and whether more
// messages lie beyond it. The page holds every message published to the
// stream before the call; chat.ErrUnavailable when the store could not catch up
// in time.
func (c *Client) History(ctx context.Context, conversation string, p chat.Page) ([]chat.Message, bool, error) {
	var resp HistoryResponse
	req := HistoryRequest{Conversation: conversation, Before: p.Before, After: p.After, Limit: p.Limit, Viewer: p.Viewer}
	if err := c.call(ctx, OpHistory, req, &resp); err != nil {
		return nil, false, err
	}
	return resp.Messages, resp.More, nil
}

// MarkRead moves user's read mark forward to msg and returns the mark after
// the call and whether it moved. chat.ErrNotFound unless user is a member.
func (c *Client) MarkRead(ctx context.Context, conversation string, user chat.ID, msg chat.ID) (chat.ID, bool, error) {
	var resp ReadResponse
	if err := c.call(ctx, OpRead, ReadRequest{Conversation: conversation, User: user, MessageID: msg}, &resp); err != nil {
		return 0, false, err
	}
	return resp.Mark, resp.Moved, nil
}

// Message returns one message as viewer sees it, once the store holds
// everything the stream held for its conversation; chat.ErrNotFound if there
// is no such message.
func (c *Client) Message(ctx context.Context, conversation string, id, viewer chat.ID) (chat.Message, error) {
	var resp MessageResponse
	if err := c.call(ctx, OpMessage, MessageRequest{Conversation: conversation, ID: id, Viewer: viewer}, &resp); err != nil {
		return chat.Message{}, err
	}
	return resp.Message, nil
}

// Changes returns the conversation's changes after the cursor p.After,
// oldest first, each with its message as p.Viewer sees it now, and whether
// more remain.
func (c *Client) Changes(ctx context.Context, conversation string, p chat.Page) ([]chat.Change, bool, error) {
	var resp ChangesResponse
	req := ChangesRequest{Conversation: conversation, After: p.After, Limit: p.Limit, Viewer: p.Viewer}
	if err := c.call(ctx, OpChanges, req, &resp); err != nil {
		return nil, false, err
	}
	return resp.Changes, resp.More, nil
}

// AddPolicy returns who may add user to a group.
func (c *Client) AddPolicy(ctx context.Context, user chat.ID) (AddPolicy, error) {
	var resp AddPolicyResponse
	if err := c.call(ctx, OpAddPolicy, AddPolicyRequest{User: user}, &resp); err != nil {
		return "", err
	}
	return resp.Policy, nil
}

// SetAddPolicy sets who may add user to a group. chat.ErrInvalid for an
// unknown policy.
func (c *Client) SetAddPolicy(ctx context.Context, user chat.ID, p AddPolicy) error {
	var resp AddPolicyResponse
	return c.call(ctx, OpSetAddPolicy, SetAddPolicyRequest{User: user, Policy: p}, &resp)
}

// Block blocks (on) or unblocks target for user. chat.ErrNotFound for an
// unknown target, chat.ErrTooMany past MaxBlocks.
func (c *Client) Block(ctx context.Context, user, target chat.ID, on bool) error {
	var resp BlocksResponse
	return c.call(ctx, OpBlock, BlockRequest{User: user, Target: target, On: on}, &resp)
}

// Blocks lists the users user blocks, ascending.
func (c *Client) Blocks(ctx context.Context, user chat.ID) ([]chat.ID, error) {
	var resp BlocksResponse
	if err := c.call(ctx, OpBlocks, BlocksRequest{User: user}, &resp); err != nil {
		return nil, err
	}
	return resp.Blocked, nil
}

// BlockedEither reports whether a blocks b or b blocks a.
func (c *Client) BlockedEither(ctx context.Context, a, b chat.ID) (bool, error) {
	var resp BlocksResponse
	if err := c.call(ctx, OpBlocks, BlocksRequest{User: a, Target: b}, &resp); err != nil {
		return false, err
	}
	return resp.Either, nil
}
