package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/chatcluster/chat"
	bbolt "go.etcd.io/bbolt"
)

// Messages that change (edits, deletions, reactions) keep the original
// message row and add three buckets, so that changes apply in any order and
// replays change nothing:
//
//	msgstate  conversation 0x00 message ID                  -> newest change, edit ID, edited at, deleted, reacted, edited body
//	reactions conversation 0x00 message ID emoji 0x00 user  -> change ID, on
//	changes   conversation 0x00 change ID                   -> kind, message ID, user, at, emoji, on
//
// An edit applies only if its change ID is above the state's edit ID (so the
// newest edit wins whatever order they come in), and never after a
// deletion. A deletion blanks the body in the message row itself and in the
// state (the text is gone from the file once bbolt reuses the page), and a
// message saved after its deletion is saved blank. A reaction row keeps its
// newest change's on/off, so toggling back writes a row, never a deletion.

var (
	bucketMsgState  = []byte("msgstate")
	bucketReactions = []byte("reactions")
	bucketChanges   = []byte("changes")
)

// msgState is what changes made of one message.
type msgState struct {
	version  chat.ID // newest change applied
	editID   chat.ID // newest edit applied, 0 if none
	editedAt int64   // milliseconds
	deleted  bool
	reacted  bool
	body     string // the newest edit's body
}

func encodeState(s msgState) []byte {
	b := make([]byte, 0, 1+8+8+10+2+len(s.body)+5)
	b = append(b, valueVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(s.version))
	b = binary.BigEndian.AppendUint64(b, uint64(s.editID))
	b = binary.AppendVarint(b, s.editedAt)
	b = append(b, boolByte(s.deleted), boolByte(s.reacted))
	return appendString(b, s.body)
}

func decodeState(v []byte) (msgState, error) {
	d := newDecoder(v)
	var s msgState
	s.version = d.id()
	s.editID = d.id()
	s.editedAt = d.time().UnixMilli()
	if d.err == nil && len(d.b) >= 2 {
		s.deleted, s.reacted = d.b[0] == 1, d.b[1] == 1
		d.b = d.b[2:]
	} else if d.err == nil {
		d.err = errCorrupt
	}
	s.body = d.string()
	return s, d.err
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// reactionKey is "conversation 0x00 message emoji 0x00 user". Emojis hold
// no 0x00 (chat.ValidEmoji refuses control characters).
func reactionKey(conv string, msg chat.ID, emoji string, user chat.ID) []byte {
	k := convKey(conv, msg)
	k = append(k, emoji...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(user))
}

// validChange checks what a change must hold for the backend to store it.
func validChange(c *chat.Change) error {
	if err := validConv(c.Conversation); err != nil {
		return err
	}
	switch {
	case c.ID == 0 || c.MessageID == 0 || c.ID > math.MaxInt64:
		return fmt.Errorf("%w: change %d of message %d", chat.ErrInvalid, c.ID, c.MessageID)
	case !c.Kind.IsChange():
		return fmt.Errorf("%w: change kind %q", chat.ErrInvalid, c.Kind)
	case c.Kind == chat.EventEdit && !chat.ValidBody(c.Body):
		return fmt.Errorf("%w: edit %d with an invalid body", chat.ErrInvalid, c.ID)
	case c.Kind == chat.EventReact && !chat.ValidEmoji(c.Emoji):
		return fmt.Errorf("%w: reaction %d with an invalid emoji", chat.ErrInvalid, c.ID)
	}
	return nil
}

// ApplyChanges applies edits, deletions and reactions in one transaction.
func (b *Backend) ApplyChanges(ctx context.Context, changes []chat.Change) error {
	for i := range changes {
		if err := validChange(&changes[i]); err != nil {
			return err
		}
	}
	if len(changes) == 0 {
		return ctx.Err()
	}
	return b.update(ctx, func(tx *bbolt.Tx) error {
		for i := range changes {
			if err := applyChange(tx, &changes[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func applyChange(tx *bbolt.Tx, c *chat.Change) error {
	log := tx.Bucket(bucketChanges)
	if err := log.Put(convKey(c.Conversation, c.ID), encodeChange(c)); err != nil {
		return err
	}
	states := tx.Bucket(bucketMsgState)
	sk := convKey(c.Conversation, c.MessageID)
	var st msgState
	if v := states.Get(sk); v != nil {
		var err error
		if st, err = decodeState(v); err != nil {
			return err
		}
	}
	// A deleted message's version is its deletion's ID: nothing after a
	// deletion changes it.
	switch {
	case c.Kind == chat.EventDelete && !st.deleted:
		st.version = c.ID
	case c.Kind == chat.EventDelete || !st.deleted:
		st.version = max(st.version, c.ID)
	}
	switch c.Kind {
	case chat.EventEdit:
		if !st.deleted && c.ID > st.editID {
			st.editID, st.editedAt, st.body = c.ID, c.At.UnixMilli(), c.Body
		}
	case chat.EventDelete:
		st.deleted, st.body = true, ""
		if err := blankMessage(tx.Bucket(bucketMessages), sk); err != nil {
			return err
		}
	case chat.EventReact:
		st.reacted = true
		rs := tx.Bucket(bucketReactions)
		rk := reactionKey(c.Conversation, c.MessageID, c.Emoji, c.User)
		if v := rs.Get(rk); len(v) == 9 && chat.ID(binary.BigEndian.Uint64(v)) >= c.ID {
			break // a newer toggle of this user's emoji is already stored
		}
		if err := rs.Put(rk, append(binary.BigEndian.AppendUint64(nil, uint64(c.ID)), boolByte(c.On))); err != nil {
			return err
		}
	}
	return states.Put(sk, encodeState(st))
}

// blankMessage rewrites a stored message with an empty body.
func blankMessage(msgs *bbolt.Bucket, k []byte) error {
	v := msgs.Get(k)
	if v == nil {
		return nil // not stored yet: SaveMessages blanks it
	}
	m, err := decodeMessage("", k, v)
	if err != nil {
		return err
	}
	m.Body = ""
	return msgs.Put(k, appendMessage(nil, &m))
}

// change log entry: version, kind, message, user, at, emoji, on.
func encodeChange(c *chat.Change) []byte {
	b := make([]byte, 0, 40+len(c.Emoji))
	b = append(b, valueVersion)
	b = appendString(b, string(c.Kind))
	b = binary.BigEndian.AppendUint64(b, uint64(c.MessageID))
	b = binary.BigEndian.AppendUint64(b, uint64(c.User))
	b = appendTime(b, c.At)
	b = appendString(b, c.Emoji)
	return append(b, boolByte(c.On))
}

func decodeChange(conv string, k, v []byte) (chat.Change, error) {
	d := newDecoder(v)
	c := chat.Change{ID: keyID(k), Conversation: conv}
	c.Kind = chat.EventKind(d.string())
	c.MessageID = d.id()
	c.User = d.id()
	c.At = d.time()
	c.Emoji = d.string()
	if d.err == nil && len(d.b) == 1 {
		c.On = d.b[0] == 1
	} else if d.err == nil {
		d.err = errCorrupt
	}
	return c, d.err
}

// dress applies what changes made of msgs (all of conversation conv): the
// edited or deleted body, reactions for viewer, the quote of a reply.
func dress(tx *bbolt.Tx, conv string, msgs []chat.Message, viewer chat.ID) error {
	states := tx.Bucket(bucketMsgState)
	for i := range msgs {
		m := &msgs[i]
		if err := dressOne(tx, states, m, viewer); err != nil {
			return err
		}
		if m.ReplyTo == 0 {
			continue
		}
		k := convKey(conv, m.ReplyTo)
		v := tx.Bucket(bucketMessages).Get(k)
		if v == nil {
			continue // not stored (yet): no quote
		}
		orig, err := decodeMessage(conv, k, v)
		if err != nil {
			return err
		}
		if err := dressOne(tx, states, &orig, 0); err != nil {
			return err
		}
		m.Reply = chat.QuoteOf(orig)
	}
	return nil
}

func dressOne(tx *bbolt.Tx, states *bbolt.Bucket, m *chat.Message, viewer chat.ID) error {
	sk := convKey(m.Conversation, m.ID)
	v := states.Get(sk)
	if v == nil {
		return nil
	}
	st, err := decodeState(v)
	if err != nil {
		return err
	}
	m.Version = st.version
	switch {
	case st.deleted:
		m.Body, m.Deleted = "", true
	case st.editID != 0:
		m.Body = st.body
		m.EditedAt = time.UnixMilli(st.editedAt).UTC()
	}
	if st.reacted && !st.deleted {
		m.Reactions = reactionsOf(tx.Bucket(bucketReactions), sk, viewer)
	}
	return nil
}

// reactionsOf sums the reactions under prefix (a message's key) by emoji.
// The rows are bounded: members times chat.MaxReactionEmojis.
func reactionsOf(rs *bbolt.Bucket, prefix []byte, viewer chat.ID) []chat.Reaction {
	var out []chat.Reaction
	cur := rs.Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		rest := k[len(prefix):]
		if len(rest) < 10 || len(v) != 9 || v[8] != 1 {
			continue
		}
		emoji := rest[:len(rest)-9]
		user := chat.ID(binary.BigEndian.Uint64(rest[len(rest)-8:]))
		if n := len(out); n == 0 || out[n-1].Emoji != string(emoji) {
			out = append(out, chat.Reaction{Emoji: string(emoji)})
		}
		r := &out[len(out)-1]
		r.Count++
		r.Me = r.Me || (viewer != 0 && user == viewer)
	}
	return out
}

// Message returns one message, dressed for viewer, or chat.ErrNotFound.
func (b *Backend) Message(ctx context.Context, conversation string, id, viewer chat.ID) (chat.Message, error) {
	if err := validConv(conversation); err != nil {
		return chat.Message{}, err
	}
	var m chat.Message
	err := b.view(ctx, func(tx *bbolt.Tx) error {
		k := convKey(conversation, id)
		v := tx.Bucket(bucketMessages).Get(k)
		if v == nil {
			return fmt.Errorf("%w: message %d in %s", chat.ErrNotFound, id, conversation)
		}
		var err error
		if m, err = decodeMessage(conversation, k, v); err != nil {
			return err
		}
		ms := []chat.Message{m}
		if err := dress(tx, conversation, ms, viewer); err != nil {
			return err
		}
		m = ms[0]
		return nil
	})
	return m, err
}

// Changes returns the conversation's changes above p.After, oldest first, at
// most p.Limit, each with its message as it is now for p.Viewer; a message
// changed several times within the page appears once, at its newest change.
// more says whether changes remain beyond the page.
func (b *Backend) Changes(ctx context.Context, conversation string, p chat.Page) ([]chat.Change, bool, error) {
	if p.Limit < 1 || p.Before != 0 {
		return nil, false, fmt.Errorf("%w: changes page %+v", chat.ErrInvalid, p)
	}
	if err := validConv(conversation); err != nil {
		return nil, false, err
	}
	var (
		out  []chat.Change
		more bool
	)
	err := b.view(ctx, func(tx *bbolt.Tx) error {
		if uint64(p.After) == math.MaxUint64 {
			return nil
		}
		prefix := convPrefix(conversation)
		cur := tx.Bucket(bucketChanges).Cursor()
		var page []chat.Change
		for k, v := cur.Seek(convKey(conversation, p.After+1)); k != nil && len(k) == len(prefix)+8 && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			if len(page) == p.Limit {
				more = true
				break
			}
			c, err := decodeChange(conversation, k, v)
			if err != nil {
				return err
			}
			page = append(page, c)
		}
		var err error
		out, err = withMessages(page, func(id chat.ID) (*chat.Message, error) {
			k := convKey(conversation, id)
			v := tx.Bucket(bucketMessages).Get(k)
			if v == nil {
				return nil, nil
			}
			m, err := decodeMessage(conversation, k, v)
			if err != nil {
				return nil, err
			}
			ms := []chat.Message{m}
			if err := dress(tx, conversation, ms, p.Viewer); err != nil {
				return nil, err
			}
			return &ms[0], nil
		})
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return out, more, nil
}

// withMessages keeps each message's newest change of page (in change
// order) and attaches the message as load returns it; a change whose
// message is not stored (load returns nil) is left out.
func withMessages(page []chat.Change, load func(chat.ID) (*chat.Message, error)) ([]chat.Change, error) {
	newest := make(map[chat.ID]chat.ID, len(page))
	for _, c := range page {
		newest[c.MessageID] = c.ID
	}
	out := make([]chat.Change, 0, len(newest))
	for _, c := range page {
		if newest[c.MessageID] != c.ID {
			continue
		}
		m, err := load(c.MessageID)
		if err != nil {
			return nil, err
		}
		c.Message = m // nil only for a message not stored (yet)
		out = append(out, c)
	}
	return out, nil
}
