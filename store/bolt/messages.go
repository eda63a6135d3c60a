package bolt

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/chatcluster/chat"
	bbolt "go.etcd.io/bbolt"
)

// SaveMessages stores msgs, of any conversations in any order, in one
// transaction (one fsync for the batch). A message whose ID is already
// stored in its conversation is left as it is; within a batch the first of
// two messages with one ID wins. The conversation need not exist: the
// Service saves what the stream delivers.
func (b *Backend) SaveMessages(ctx context.Context, msgs []chat.Message) error {
	if len(msgs) == 0 {
		return ctx.Err()
	}
	keyBytes, valBytes := 0, 0
	for i := range msgs {
		m := &msgs[i]
		if err := validConv(m.Conversation); err != nil {
			return err
		}
		if m.ID == 0 {
			return fmt.Errorf("%w: message without an ID in %s", chat.ErrInvalid, m.Conversation)
		}
		keyBytes += len(m.Conversation) + 1 + 8
		valBytes += messageSize(m)
	}
	// Keys and values go into two slabs (bbolt keeps referring to them until
	// the commit), and are put in key order, which suits the B+tree.
	type kv struct {
		k, v []byte
		m    *chat.Message
	}
	kvs := make([]kv, len(msgs))
	keys := make([]byte, 0, keyBytes)
	vals := make([]byte, 0, valBytes)
	for i := range msgs {
		ks, vs := len(keys), len(vals)
		keys = appendConvKey(keys, msgs[i].Conversation, msgs[i].ID)
		vals = appendMessage(vals, &msgs[i])
		kvs[i] = kv{keys[ks:len(keys):len(keys)], vals[vs:len(vals):len(vals)], &msgs[i]}
	}
	slices.SortStableFunc(kvs, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	return b.update(ctx, func(tx *bbolt.Tx) error {
		bucket := tx.Bucket(bucketMessages)
		states := tx.Bucket(bucketMsgState)
		var prev []byte
		fresh := make(map[string][]*chat.Message) // new messages by conversation, for the counters
		for _, e := range kvs {
			if bytes.Equal(e.k, prev) {
				continue // a duplicate inside the batch: the first stays
			}
			prev = e.k
			if bucket.Get(e.k) != nil {
				continue
			}
			if v := states.Get(e.k); v != nil {
				// Deleted before it was saved here (changes may arrive
				// first after a redelivery): save it blank.
				if st, err := decodeState(v); err != nil {
					return err
				} else if st.deleted {
					m, err := decodeMessage("", e.k, e.v)
					if err != nil {
						return err
					}
					m.Body = ""
					e.v = appendMessage(nil, &m)
				}
			}
			m := e.m
			if _, ok := fresh[m.Conversation]; !ok {
				// Counted before this batch's puts, so that a conversation
				// stored before counts were kept is counted exactly once.
				if _, err := ensureCount(tx, m.Conversation); err != nil {
					return err
				}
			}
			if err := bucket.Put(e.k, e.v); err != nil {
				return err
			}
			fresh[m.Conversation] = append(fresh[m.Conversation], m)
		}
		for conv, ms := range fresh {
			if err := countNew(tx, conv, ms); err != nil {
				return err
			}
		}
		return nil
	})
}

// Messages returns one page of a conversation's history, one range scan:
// newest first for Before or no cursor, oldest first for After. more says
// whether a message exists beyond the page in the direction of travel. An
// unknown conversation has no messages. A Page with both cursors, or a Limit
// under 1, is ErrInvalid.
func (b *Backend) Messages(ctx context.Context, conversation string, p chat.Page) ([]chat.Message, bool, error) {
	if p.Limit < 1 {
		return nil, false, fmt.Errorf("%w: page limit %d", chat.ErrInvalid, p.Limit)
	}
	if p.Before != 0 && p.After != 0 {
		return nil, false, fmt.Errorf("%w: page with both before and after", chat.ErrInvalid)
	}
	if err := validConv(conversation); err != nil {
		return nil, false, err
	}
	var (
		out  []chat.Message
		more bool
	)
	err := b.view(ctx, func(tx *bbolt.Tx) error {
		cur := tx.Bucket(bucketMessages).Cursor()
		prefix := convPrefix(conversation)
		inConv := func(k []byte) bool { return k != nil && len(k) == len(prefix)+8 && bytes.HasPrefix(k, prefix) }

		var k, v []byte
		var step func() ([]byte, []byte)
		if p.After != 0 {
			if uint64(p.After) == math.MaxUint64 {
				return nil
			}
			k, v = cur.Seek(convKey(conversation, p.After+1))
			step = cur.Next
		} else {
			// The newest message under the bound: seek to the first key at
			// or past it, then step back once.
			bound := convEnd(conversation)
			if p.Before != 0 {
				bound = convKey(conversation, p.Before)
			}
			if k, _ = cur.Seek(bound); k == nil {
				k, v = cur.Last()
			} else {
				k, v = cur.Prev()
			}
			step = cur.Prev
		}
		// Collect the page's raw values first (they stay valid until the
		// transaction ends), then decode all of them with their strings in
		// one allocation: a page is 4 allocations, not 2 per message.
		var raws [][2][]byte
		for ; inConv(k); k, v = step() {
			if len(raws) == p.Limit {
				more = true
				break
			}
			if raws == nil {
				raws = make([][2][]byte, 0, min(p.Limit, 64))
			}
			raws = append(raws, [2][]byte{k, v})
		}
		if len(raws) == 0 {
			return nil
		}
		var err error
		if out, err = decodeMessages(conversation, raws); err != nil {
			return err
		}
		return dress(tx, conversation, out, p.Viewer)
	})
	if err != nil {
		return nil, false, err
	}
	return out, more, nil
}
