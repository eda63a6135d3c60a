package cassandra

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/chatcluster/chat"
)

// Username search in bounded partitions (schema/migrations/0008):
// users_by_prefix holds a user under the first prefixLen characters of the
// name, username_prefixes the keys in use under their first character.
// Keys are a monotone function of names (a name's key is a prefix of it),
// so walking the keys in order and each key's users in order yields the
// names in order: the results are those of one ordered scan.
//
// Accounts made before 0008 are only in users_by_initial, which is no
// longer written; search reads it too and merges, so they are still found.

const prefixLen = 4

// searchAlphabet is every byte a username may hold, in byte (CQL text)
// order.
var searchAlphabet = func() []byte {
	var a []byte
	for c := 0; c < 256; c++ {
		if chat.UsernameByte(byte(c)) {
			a = append(a, byte(c))
		}
	}
	return a
}()

func prefixKey(username string) string { return username[:min(len(username), prefixLen)] }

// prefixSeen remembers the keys this process wrote to username_prefixes,
// one bit per possible key of prefixLen characters (39^4 bits: 290 KiB);
// shorter keys (three-character names) use the same bits padded with the
// first letter's slot 0, kept apart by their length in a small map.
type prefixSeen struct {
	mu    sync.Mutex
	bits  []uint64
	short map[string]bool
}

func (s *prefixSeen) index(key string) (int, bool) {
	if len(key) != prefixLen {
		return 0, false
	}
	i := 0
	for j := 0; j < len(key); j++ {
		p, ok := slices.BinarySearch(searchAlphabet, key[j])
		if !ok {
			return 0, false
		}
		i = i*len(searchAlphabet) + p
	}
	return i, true
}

// add records key and reports whether it was new.
func (s *prefixSeen) add(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.index(key)
	if !ok {
		if s.short == nil {
			s.short = map[string]bool{}
		}
		if s.short[key] {
			return false
		}
		s.short[key] = true
		return true
	}
	if s.bits == nil {
		n := 1
		for range prefixLen {
			n *= len(searchAlphabet)
		}
		s.bits = make([]uint64, (n+63)/64)
	}
	if s.bits[i/64]&(1<<(i%64)) != 0 {
		return false
	}
	s.bits[i/64] |= 1 << (i % 64)
	return true
}

// forget drops key after a failed write, so the next sign-up writes it.
func (s *prefixSeen) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.index(key); ok && s.bits != nil {
		s.bits[i/64] &^= 1 << (i % 64)
	} else {
		delete(s.short, key)
	}
}

// writeSearchRows makes a user findable: its users_by_prefix row, and the
// key in username_prefixes unless this process wrote it already.
func (b *Backend) writeSearchRows(ctx context.Context, u chat.User) error {
	key := prefixKey(u.Username)
	if err := b.q(ctx, `INSERT INTO users_by_prefix (prefix, username, user_id, display_name) VALUES (?, ?, ?, ?)`,
		key, u.Username, int64(u.ID), unsetIfEmpty(u.DisplayName)).Exec(); err != nil {
		return err
	}
	if !b.prefixes.add(key) {
		return nil
	}
	if err := b.q(ctx, `INSERT INTO username_prefixes (initial, prefix) VALUES (?, ?)`, key[:1], key).Exec(); err != nil {
		b.prefixes.forget(key)
		return err
	}
	return nil
}

// searchPrefix returns up to limit users whose name starts with prefix, in
// name order, from users_by_prefix.
func (b *Backend) searchPrefix(ctx context.Context, prefix string, limit int) ([]chat.User, error) {
	if len(prefix) >= prefixLen {
		return b.sliceUsers(ctx, `users_by_prefix WHERE prefix = ?`, prefixKey(prefix), prefix, limit)
	}
	initials := searchAlphabet
	if prefix != "" {
		initials = []byte{prefix[0]}
	}
	var users []chat.User
	for _, in := range initials {
		iter := b.q(ctx, `SELECT prefix FROM username_prefixes WHERE initial = ? AND prefix >= ?`, string(in), prefix).
			PageSize(1000).Iter()
		var key string
		for len(users) < limit && iter.Scan(&key) {
			if !strings.HasPrefix(key, prefix) {
				break
			}
			got, err := b.sliceUsers(ctx, `users_by_prefix WHERE prefix = ?`, key, prefix, limit-len(users))
			if err != nil {
				_ = iter.Close()
				return nil, err
			}
			users = append(users, got...)
		}
		if err := iter.Close(); err != nil {
			return nil, err
		}
		if len(users) == limit {
			break
		}
	}
	return users, nil
}

// sliceUsers reads users of one partition (from where, with key) whose
// names start with prefix, in order.
func (b *Backend) sliceUsers(ctx context.Context, from, key, prefix string, limit int) ([]chat.User, error) {
	iter := b.q(ctx, `SELECT username, user_id, display_name FROM `+from+` AND username >= ? LIMIT ?`,
		key, prefix, limit).PageSize(min(limit, 500)).Iter()
	var (
		users         []chat.User
		name, display string
		id            int64
	)
	for len(users) < limit && iter.Scan(&name, &id, &display) {
		if !strings.HasPrefix(name, prefix) {
			break
		}
		users = append(users, chat.User{ID: chat.ID(id), Username: name, DisplayName: display})
	}
	return users, iter.Close()
}

// mergeUsers merges two name-ordered lists, a name once, at most limit.
func mergeUsers(a, c []chat.User, limit int) []chat.User {
	out := make([]chat.User, 0, min(limit, len(a)+len(c)))
	for len(out) < limit && (len(a) > 0 || len(c) > 0) {
		switch {
		case len(c) == 0 || len(a) > 0 && a[0].Username < c[0].Username:
			out, a = append(out, a[0]), a[1:]
		case len(a) == 0 || c[0].Username < a[0].Username:
			out, c = append(out, c[0]), c[1:]
		default:
			out, a, c = append(out, a[0]), a[1:], c[1:]
		}
	}
	return out
}
