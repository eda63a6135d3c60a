package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/chatcluster/chat"
	bbolt "go.etcd.io/bbolt"
)

// CreateConversation stores c with its members (joined at c.CreatedAt)
// unless a conversation with c.ID exists; it returns the stored conversation
// and whether this call created it. Check and write are one transaction.
func (b *Backend) CreateConversation(ctx context.Context, c chat.Conversation) (chat.Conversation, bool, error) {
	if err := validConv(c.ID); err != nil {
		return chat.Conversation{}, false, err
	}
	if c.Kind != chat.Direct && c.Kind != chat.Group {
		return chat.Conversation{}, false, fmt.Errorf("%w: conversation kind %q", chat.ErrInvalid, c.Kind)
	}
	var (
		out     chat.Conversation
		created bool
	)
	err := b.update(ctx, func(tx *bbolt.Tx) error {
		convs := tx.Bucket(bucketConvs)
		if v := convs.Get([]byte(c.ID)); v != nil {
			var err error
			out, err = readConv(tx, c.ID, v)
			created = false
			return err
		}
		if err := convs.Put([]byte(c.ID), encodeConv(c)); err != nil {
			return err
		}
		members := sortedUnique(c.Members)
		if _, err := addMembers(tx, c.ID, members, c.CreatedAt); err != nil {
			return err
		}
		if n, ok := convCount(tx, []byte(c.ID)); ok && n > 0 {
			// Messages stored before the conversation (the stream got there
			// first): count each member's own among them.
			if err := rebaseAll(tx, c.ID, members); err != nil {
				return err
			}
		}
		out = c
		out.CreatedAt = time.UnixMilli(c.CreatedAt.UnixMilli()).UTC() // as stored
		out.Members = members
		created = true
		return nil
	})
	if err != nil {
		return chat.Conversation{}, false, err
	}
	return out, created, nil
}

// AddMembers adds users to a conversation, joined at at, and returns the
// conversation after the change and the users that were not members
// before, ascending. ErrNotFound for an unknown conversation.
func (b *Backend) AddMembers(ctx context.Context, conversation string, users []chat.ID, at time.Time) (chat.Conversation, []chat.ID, error) {
	if err := validConv(conversation); err != nil {
		return chat.Conversation{}, nil, err
	}
	var (
		out   chat.Conversation
		added []chat.ID
	)
	err := b.update(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketConvs).Get([]byte(conversation))
		if v == nil {
			return fmt.Errorf("%w: conversation %s", chat.ErrNotFound, conversation)
		}
		var err error
		if added, err = addMembers(tx, conversation, sortedUnique(users), at); err != nil {
			return err
		}
		out, err = readConv(tx, conversation, v)
		return err
	})
	if err != nil {
		return chat.Conversation{}, nil, err
	}
	return out, added, nil
}

// addMembers makes users members of conv unless they are, and returns
// those it added.
func addMembers(tx *bbolt.Tx, conv string, users []chat.ID, at time.Time) ([]chat.ID, error) {
	members := tx.Bucket(bucketMembers)
	userConvs := tx.Bucket(bucketUserConvs)
	// A new member has read nothing and sent nothing here: their unread
	// count is the conversation's count (CreateConversation rebases the
	// members of a conversation whose messages came before it).
	value := encodeMembership(membership{joinedAt: at, counted: true})
	var added []chat.ID
	for _, u := range users {
		k := convKey(conv, u)
		if members.Get(k) != nil {
			continue
		}
		if err := members.Put(k, value); err != nil {
			return nil, err
		}
		if err := userConvs.Put(append(idKey(u), conv...), nil); err != nil {
			return nil, err
		}
		added = append(added, u)
	}
	return added, nil
}

// sortedUnique returns ids ascending without duplicates, never nil (as
// readConv returns members).
func sortedUnique(ids []chat.ID) []chat.ID {
	s := append(make([]chat.ID, 0, len(ids)), ids...)
	slices.Sort(s)
	return slices.Compact(s)
}

// Conversation returns a conversation with its members, or ErrNotFound.
func (b *Backend) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	var out chat.Conversation
	err := b.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketConvs).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: conversation %s", chat.ErrNotFound, id)
		}
		var err error
		out, err = readConv(tx, id, v)
		return err
	})
	return out, err
}

// readConv decodes a conversation's header v and reads its members: one
// range scan, ascending by ID as the keys are.
func readConv(tx *bbolt.Tx, id string, v []byte) (chat.Conversation, error) {
	c, err := decodeConv(id, v)
	if err != nil {
		return c, fmt.Errorf("conversation %s: %w", id, err)
	}
	prefix := convPrefix(id)
	cur := tx.Bucket(bucketMembers).Cursor()
	c.Members = []chat.ID{}
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		if len(k) != len(prefix)+8 {
			return c, fmt.Errorf("conversation %s: member key %x: %w", id, k, errCorrupt)
		}
		c.Members = append(c.Members, keyID(k))
	}
	c.MemberCount = len(c.Members)
	return c, nil
}

// readConvHead decodes a conversation's header and its member count, with
// the members only when there are at most chat.MaxInlineMembers: what a
// list entry carries. Counting is a walk over keys (no values decoded).
func readConvHead(tx *bbolt.Tx, id string, v []byte) (chat.Conversation, error) {
	c, err := decodeConv(id, v)
	if err != nil {
		return c, fmt.Errorf("conversation %s: %w", id, err)
	}
	prefix := convPrefix(id)
	cur := tx.Bucket(bucketMembers).Cursor()
	members := make([]chat.ID, 0, 8)
	n := 0
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		if n < chat.MaxInlineMembers+1 {
			if len(k) != len(prefix)+8 {
				return c, fmt.Errorf("conversation %s: member key %x: %w", id, k, errCorrupt)
			}
			members = append(members, keyID(k))
		}
		n++
	}
	c.MemberCount = n
	if n <= chat.MaxInlineMembers {
		c.Members = members
	}
	return c, nil
}

// RemoveMember deletes user's membership and list entry in one
// transaction and returns the conversation after it.
func (b *Backend) RemoveMember(ctx context.Context, conversation string, user chat.ID) (chat.Conversation, bool, error) {
	if err := validConv(conversation); err != nil {
		return chat.Conversation{}, false, err
	}
	var (
		out chat.Conversation
		was bool
	)
	err := b.update(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketConvs).Get([]byte(conversation))
		if v == nil {
			return fmt.Errorf("%w: conversation %s", chat.ErrNotFound, conversation)
		}
		key := convKey(conversation, user)
		if was = tx.Bucket(bucketMembers).Get(key) != nil; was {
			if err := tx.Bucket(bucketMembers).Delete(key); err != nil {
				return err
			}
			if err := tx.Bucket(bucketUserConvs).Delete(append(idKey(user), conversation...)); err != nil {
				return err
			}
		}
		var err error
		out, err = readConv(tx, conversation, v)
		return err
	})
	if err != nil {
		return chat.Conversation{}, false, err
	}
	return out, was, nil
}

// Members returns up to limit of a conversation's member IDs above after,
// ascending, and whether more follow. ErrNotFound for an unknown
// conversation.
func (b *Backend) Members(ctx context.Context, conversation string, after chat.ID, limit int) ([]chat.ID, bool, error) {
	if err := validConv(conversation); err != nil {
		return nil, false, err
	}
	if limit < 1 {
		return nil, false, fmt.Errorf("%w: limit %d", chat.ErrInvalid, limit)
	}
	var (
		out  = []chat.ID{}
		more bool
	)
	err := b.view(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketConvs).Get([]byte(conversation)) == nil {
			return fmt.Errorf("%w: conversation %s", chat.ErrNotFound, conversation)
		}
		prefix := convPrefix(conversation)
		cur := tx.Bucket(bucketMembers).Cursor()
		for k, _ := cur.Seek(convKey(conversation, after+1)); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			if len(out) == limit {
				more = true
				return nil
			}
			if after == ^chat.ID(0) {
				return nil // nothing is above the largest ID (after+1 wrapped)
			}
			out = append(out, keyID(k))
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, more, nil
}

// entry is one of a user's conversations while the list is sorted. Its
// byte slices point into the memory map: valid until the read transaction
// ends, and not copied for the conversations that do not make the list.
type entry struct {
	conv     []byte
	m        membership
	activity time.Time
	lastKey  []byte // the key of the last message, nil when none
	lastVal  []byte
}

// Conversations lists up to limit of a user's conversations, the most recent
// activity first (ties by conversation ID). It reads each of the user's
// conversations' membership and last message (a few B-tree lookups each,
// no message scans, no allocation), sorts, and only for the first limit
// reads members, decodes the last message and counts unread (bounded).
func (b *Backend) Conversations(ctx context.Context, user chat.ID, limit int) ([]chat.Summary, error) {
	if limit <= 0 {
		return nil, nil
	}
	list, _, err := b.ConversationPage(ctx, user, chat.ListPage{Limit: limit})
	return list, err
}

// ConversationPage is one page of the list Conversations returns, after
// p's cursor; list entries carry members only for conversations of at most
// chat.MaxInlineMembers (MemberCount always).
func (b *Backend) ConversationPage(ctx context.Context, user chat.ID, p chat.ListPage) ([]chat.Summary, bool, error) {
	if p.Limit <= 0 {
		return nil, false, fmt.Errorf("%w: limit %d", chat.ErrInvalid, p.Limit)
	}
	limit := p.Limit
	var (
		out  []chat.Summary
		more bool
	)
	err := b.view(ctx, func(tx *bbolt.Tx) error {
		members := tx.Bucket(bucketMembers)
		msgs := tx.Bucket(bucketMessages).Cursor()
		prefix := idKey(user)
		cur := tx.Bucket(bucketUserConvs).Cursor()
		var (
			entries []entry
			key     []byte // scratch
		)
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			e := entry{conv: k[len(prefix):]}
			key = binary.BigEndian.AppendUint64(append(append(key[:0], e.conv...), 0), uint64(user))
			mv := members.Get(key)
			if mv == nil {
				return fmt.Errorf("user %d: conversation %s without membership: %w", user, e.conv, errCorrupt)
			}
			var err error
			if e.m, err = decodeMembership(mv); err != nil {
				return err
			}
			e.activity = e.m.joinedAt
			if e.lastKey, e.lastVal = lastMessage(msgs, e.conv, &key); e.lastKey != nil {
				if e.activity, err = messageTime(e.lastVal); err != nil {
					return err
				}
			}
			if p.After(e.activity, string(e.conv)) {
				entries = append(entries, e)
			}
		}
		slices.SortFunc(entries, func(a, b entry) int {
			if c := b.activity.Compare(a.activity); c != 0 {
				return c
			}
			return bytes.Compare(a.conv, b.conv)
		})
		more = len(entries) > limit
		entries = entries[:min(limit, len(entries))]

		convs := tx.Bucket(bucketConvs)
		out = make([]chat.Summary, 0, len(entries))
		for _, e := range entries {
			id := string(e.conv)
			cv := convs.Get(e.conv)
			if cv == nil {
				return fmt.Errorf("conversation %s: members without a conversation: %w", id, errCorrupt)
			}
			c, err := readConvHead(tx, id, cv)
			if err != nil {
				return err
			}
			s := chat.Summary{Conversation: c, LastRead: e.m.lastRead, Activity: e.activity}
			if e.lastKey != nil {
				m, err := decodeMessage(id, e.lastKey, e.lastVal)
				if err != nil {
					return err
				}
				ms := []chat.Message{m}
				if err := dress(tx, id, ms, user); err != nil {
					return err
				}
				s.LastMessage = &ms[0]
				if n, ok := unreadOf(tx, e.conv, e.m); ok {
					s.Unread = n
				} else {
					s.Unread = unread(msgs, e.conv, user, e.m.lastRead, &key)
				}
			}
			out = append(out, s)
		}
		return nil
	})
	return out, more, err
}

// lastMessage positions cur on conv's newest message and returns it, or
// nil when conv has none. scratch is reused for the seek key.
func lastMessage(cur *bbolt.Cursor, conv []byte, scratch *[]byte) ([]byte, []byte) {
	end := append(append((*scratch)[:0], conv...), 1) // the first key after conv's
	*scratch = end
	k, v := cur.Seek(end)
	if k == nil {
		k, v = cur.Last()
	} else {
		k, v = cur.Prev()
	}
	if k == nil || len(k) != len(conv)+1+8 || !bytes.HasPrefix(k, conv) || k[len(conv)] != 0 {
		return nil, nil
	}
	return k, v
}

// unread counts conv's messages newer than mark from others than user,
// newest first, stopping at chat.UnreadCap (or after maxUnreadScan
// messages).
func unread(cur *bbolt.Cursor, conv []byte, user, mark chat.ID, scratch *[]byte) int {
	n := 0
	k, v := lastMessage(cur, conv, scratch)
	for scanned := 0; k != nil && n < chat.UnreadCap && scanned < maxUnreadScan; scanned++ {
		if len(k) != len(conv)+1+8 || !bytes.HasPrefix(k, conv) || k[len(conv)] != 0 || keyID(k) <= mark {
			break
		}
		if sender, ok := messageSender(v); ok && sender != user {
			n++
		}
		k, v = cur.Prev()
	}
	return n
}

// MarkRead moves user's read mark in conversation forward to msg and
// returns the mark after the call and whether it moved. ErrNotFound when
// user is not a member of conversation (store.go leaves this case open).
// A mark that would not move costs a read transaction only, no fsync.
func (b *Backend) MarkRead(ctx context.Context, conversation string, user chat.ID, msg chat.ID) (chat.ID, bool, error) {
	if err := validConv(conversation); err != nil {
		return 0, false, err
	}
	key := convKey(conversation, user)
	var (
		mark  chat.ID
		moved bool
	)
	// apply reads the mark and, in a write transaction, moves it.
	apply := func(tx *bbolt.Tx) error {
		members := tx.Bucket(bucketMembers)
		v := members.Get(key)
		if v == nil {
			return fmt.Errorf("%w: user %d in conversation %s", chat.ErrNotFound, user, conversation)
		}
		m, err := decodeMembership(v)
		if err != nil {
			return err
		}
		mark, moved = m.lastRead, msg > m.lastRead
		if !moved || !tx.Writable() {
			return nil
		}
		m.lastRead = msg
		mark = msg
		if err := rebase(tx, conversation, user, &m); err != nil {
			return err
		}
		return members.Put(key, encodeMembership(m))
	}
	if err := b.view(ctx, apply); err != nil || !moved {
		return mark, false, err
	}
	if err := b.update(ctx, apply); err != nil {
		return 0, false, err
	}
	return mark, moved, nil
}
