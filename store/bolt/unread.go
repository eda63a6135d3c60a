package bolt

import (
	"bytes"
	"encoding/binary"

	"github.com/chatcluster/chat"
	bbolt "go.etcd.io/bbolt"
)

// Unread counts in O(1) (issue 11): each conversation counts its stored
// messages (bucketCounts), and each membership remembers that count at its
// read mark (readPos) and how many of its own messages came after the mark
// (ownAfter). unread = count - readPos - ownAfter: the list reads two
// values per conversation instead of scanning its messages. The counters
// move in the transactions that change what they count (SaveMessages,
// MarkRead), so they are exact, with one exception: a message stored out of
// order (older than a reader's mark, after the mark was set: a redelivery
// after a store failure) counts as unread for that reader until their next
// read mark, which recomputes the counters from the messages.

// convCount returns conv's message count and whether it is kept.
func convCount(tx *bbolt.Tx, conv []byte) (uint64, bool) {
	v := tx.Bucket(bucketCounts).Get(conv)
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

func putCount(tx *bbolt.Tx, conv []byte, n uint64) error {
	return tx.Bucket(bucketCounts).Put(conv, binary.BigEndian.AppendUint64(nil, n))
}

// ensureCount starts conv's count, counting the messages stored before
// counts were kept (once per conversation; none for a new one).
func ensureCount(tx *bbolt.Tx, conv string) (uint64, error) {
	if n, ok := convCount(tx, []byte(conv)); ok {
		return n, nil
	}
	prefix := convPrefix(conv)
	n := uint64(0)
	cur := tx.Bucket(bucketMessages).Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		n++
	}
	return n, putCount(tx, []byte(conv), n)
}

// countNew records new messages of conv from each sender: the count grows
// and each sender's own messages after their mark too.
func countNew(tx *bbolt.Tx, conv string, msgs []*chat.Message) error {
	n, err := ensureCount(tx, conv)
	if err != nil {
		return err
	}
	if err := putCount(tx, []byte(conv), n+uint64(len(msgs))); err != nil {
		return err
	}
	members := tx.Bucket(bucketMembers)
	for _, m := range msgs {
		key := convKey(conv, m.Sender)
		v := members.Get(key)
		if v == nil {
			continue // not (yet) a member: the stream holds what it holds
		}
		ms, err := decodeMembership(v)
		if err != nil {
			return err
		}
		if !ms.counted || m.ID <= ms.lastRead {
			continue
		}
		ms.ownAfter++
		if err := members.Put(key, encodeMembership(ms)); err != nil {
			return err
		}
	}
	return nil
}

// rebase sets m's counters for its read mark from the messages after it,
// newest first: at most chat.UnreadCap of others' (beyond that the count
// is capped anyway) and maxUnreadScan in all.
func rebase(tx *bbolt.Tx, conv string, user chat.ID, m *membership) error {
	total, err := ensureCount(tx, conv)
	if err != nil {
		return err
	}
	var scratch []byte
	cur := tx.Bucket(bucketMessages).Cursor()
	cb := []byte(conv)
	others, own := uint64(0), uint64(0)
	k, v := lastMessage(cur, cb, &scratch)
	for scanned := 0; k != nil && others < chat.UnreadCap && scanned < maxUnreadScan; scanned++ {
		if len(k) != len(cb)+1+8 || !bytes.HasPrefix(k, cb) || k[len(cb)] != 0 || keyID(k) <= m.lastRead {
			break
		}
		if sender, ok := messageSender(v); ok && sender == user {
			own++
		} else {
			others++
		}
		k, v = cur.Prev()
	}
	m.counted = true
	m.readPos = total - min(total, others+own)
	m.ownAfter = own
	return nil
}

// unreadOf is the unread count of a counted membership of conv; ok is false
// when it must be counted by a scan (kept from before the counters).
func unreadOf(tx *bbolt.Tx, conv []byte, m membership) (int, bool) {
	total, ok := convCount(tx, conv)
	if !ok || !m.counted {
		return 0, false
	}
	n := int64(total) - int64(m.readPos) - int64(m.ownAfter)
	return int(max(0, min(n, chat.UnreadCap))), true
}

// rebaseAll rebases the memberships of users in conv.
func rebaseAll(tx *bbolt.Tx, conv string, users []chat.ID) error {
	members := tx.Bucket(bucketMembers)
	for _, u := range users {
		key := convKey(conv, u)
		v := members.Get(key)
		if v == nil {
			continue
		}
		m, err := decodeMembership(v)
		if err != nil {
			return err
		}
		if err := rebase(tx, conv, u, &m); err != nil {
			return err
		}
		if err := members.Put(key, encodeMembership(m)); err != nil {
			return err
		}
	}
	return nil
}
