// Package storetest is the conformance suite every store.Backend must pass.
// It is written against the store.Backend interface only, so the embedded
// (bbolt) backend and the Cassandra backend are held to exactly the same
// contract:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Backend { return openEmpty(t) })
//	}
//
// The suite is deterministic: IDs are built from chat.FirstID at fixed
// times, and the few shuffles use a fixed seed. Row counts are kept modest
// so that it runs in seconds against a real Cassandra node.
//
// Assumptions the suite makes where store.go is silent (each is also said at
// the test that relies on it):
//   - All times a caller passes have millisecond precision (the protocol's),
//     and backends return them unchanged (compared with time.Equal).
//   - Messages with a Page that sets both Before and After, or a Limit under
//     1, fails with chat.ErrInvalid.
//   - Messages of an unknown conversation is an empty page or ErrNotFound.
//   - A failed CreateAccount stores nothing (the loser of a username race
//     leaves no account behind); replaying a successful CreateAccount, or
//     retrying it under another ID with the same password hash, answers
//     the stored account and changes nothing.
//   - Members of a new conversation joined at its CreatedAt.
//   - Activity is the newest message's SentAt even when that is older than
//     the user's joining (store.go: "the newest message's time, else when
//     the user joined").
//   - After: 1 means "from the very beginning" (After: 0 means no cursor);
//     no fixture uses ID 1.
package storetest

import (
	"testing"

	"github.com/chatcluster/chat/store"
)

// Run runs every conformance test against backends made by open. open is
// called once per subtest and must return a new, empty backend. The suite
// closes that backend when the subtest ends; since Close must be safe to
// call twice, open may register its own cleanup as well. Subtests run one
// after another, never in parallel, so open may reuse shared resources
// (a Cassandra keyspace it empties, for example).
func Run(t *testing.T, open func(t *testing.T) store.Backend) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := open(t)
			if b == nil {
				t.Fatal("open returned a nil backend")
			}
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, b)
		})
	}
}

type test struct {
	name string
	fn   func(t *testing.T, b store.Backend)
}

// tests is every conformance test, in the order they run.
var tests = []test{
	// Accounts and users.
	{"CreateAccountAndLookup", testCreateAccountAndLookup},
	{"AccountByUsernameNotFound", testAccountByUsernameNotFound},
	{"UsernameTaken", testUsernameTaken},
	{"UsernameTakenConcurrent", testUsernameTakenConcurrent},
	{"CreateAccountRetried", testCreateAccountRetried},
	{"Users", testUsers},
	{"SearchUsers", testSearchUsers},

	// Conversations and membership.
	{"CreateConversation", testCreateConversation},
	{"CreateConversationIdempotent", testCreateConversationIdempotent},
	{"CreateConversationConcurrent", testCreateConversationConcurrent},
	{"ConversationNotFound", testConversationNotFound},
	{"AddMembers", testAddMembers},
	{"AddMembersConcurrent", testAddMembersConcurrent},
	{"LargeGroup", testLargeGroup},

	// Conversation lists.
	{"ConversationsEmpty", testConversationsEmpty},
	{"ConversationsActivityOrder", testConversationsActivityOrder},
	{"ConversationsLimit", testConversationsLimit},
	{"ConversationsLastMessage", testConversationsLastMessage},
	{"ConversationsUnread", testConversationsUnread},
	{"ConversationsUnreadCap", testConversationsUnreadCap},
	{"ConversationsUnreadNumbered", testConversationsUnreadNumbered},
	{"ConversationsUnreadCapNumbered", testConversationsUnreadCapNumbered},
	{"ConversationsUnreadRuns", testConversationsUnreadRuns},
	{"SaveMessagesNumberedReplays", testSaveMessagesNumberedReplays},
	{"ConversationPageWalk", testConversationPageWalk},
	{"ConversationPageInlineMembers", testConversationPageInlineMembers},
	{"ConversationListManyOrder", testConversationListManyOrder},
	{"MembersPaging", testMembersPaging},
	{"RemoveMember", testRemoveMember},

	// Messages.
	{"SaveMessagesRoundTrip", testSaveMessagesRoundTrip},
	{"SaveMessagesEmpty", testSaveMessagesEmpty},
	{"SaveMessagesIdempotent", testSaveMessagesIdempotent},
	{"SaveMessagesKeepsFirst", testSaveMessagesKeepsFirst},
	{"SaveMessagesManyConversations", testSaveMessagesManyConversations},
	{"SaveMessagesOutOfOrder", testSaveMessagesOutOfOrder},
	{"SaveMessagesConcurrent", testSaveMessagesConcurrent},
	{"MessagesEmptyConversation", testMessagesEmptyConversation},
	{"MessagesPagingBoundaries", testMessagesPagingBoundaries},
	{"MessagesPagingWalk", testMessagesPagingWalk},
	{"MessagesBucketBoundaries", testMessagesBucketBoundaries},
	{"MessagesInvalidPage", testMessagesInvalidPage},

	// Messages that change (changes.go).
	{"EditWinsInAnyOrder", testEditWinsInAnyOrder},
	{"EditBeforeSave", testEditBeforeSave},
	{"DeleteWinsOverEdits", testDeleteWinsOverEdits},
	{"DeleteBeforeSave", testDeleteBeforeSave},
	{"Reactions", testReactions},
	{"ReactionsToggleOrder", testReactionsToggleOrder},
	{"Replies", testReplies},
	{"MessageLookup", testMessageLookup},
	{"ChangesLog", testChangesLog},
	{"ChangesAcrossBuckets", testChangesAcrossBuckets},
	{"ChangesInvalid", testChangesInvalid},
	{"ConversationsLastMessageDeleted", testConversationsLastMessageDeleted},

	// Read marks.
	{"MarkRead", testMarkRead},
	{"MarkReadConcurrent", testMarkReadConcurrent},

	// Push: devices, mutes, member states.
	{"Devices", testDevices},
	{"DevicesInvalid", testDevicesInvalid},
	{"DevicesLimit", testDevicesLimit},
	{"MemberStates", testMemberStates},
	// Sessions and passwords.
	{"SessionCreateAndGet", testSessionCreateAndGet},
	{"SessionNotFound", testSessionNotFound},
	{"SessionRotate", testSessionRotate},
	{"SessionRotateConcurrent", testSessionRotateConcurrent},
	{"SessionDelete", testSessionDelete},
	{"SessionsList", testSessionsList},
	{"SetPasswordHash", testSetPasswordHash},

	// Lifecycle.
	{"CloseTwice", testCloseTwice},
}
