package gateway

import (
	"context"
	"sync"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
)

// userCache keeps users by ID. Users never change once created, so entries
// need no invalidation; the cache is only bounded.
type userCache struct {
	st  *storeclient.Client
	max int

	mu    sync.Mutex
	users map[chat.ID]chat.User
}

func newUserCache(st *storeclient.Client, max int) *userCache {
	return &userCache{st: st, max: max, users: make(map[chat.ID]chat.User)}
}

// get returns the users with these IDs that exist, asking the store once
// for all that are not cached.
func (uc *userCache) get(ctx context.Context, ids []chat.ID) (map[chat.ID]chat.User, error) {
	out := make(map[chat.ID]chat.User, len(ids))
	var missing []chat.ID
	uc.mu.Lock()
	for _, id := range ids {
		if u, ok := uc.users[id]; ok {
			out[id] = u
		} else if _, dup := out[id]; !dup {
			missing = append(missing, id)
			out[id] = chat.User{} // placeholder, replaced or removed below
		}
	}
	uc.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	found, err := uc.st.Users(ctx, missing)
	if err != nil {
		return nil, err
	}
	for _, id := range missing {
		delete(out, id)
	}
	uc.mu.Lock()
	if len(uc.users)+len(found) > uc.max {
		clear(uc.users) // crude, but bounded; the working set refills fast
	}
	for _, u := range found {
		uc.users[u.ID] = u
		out[u.ID] = u
	}
	uc.mu.Unlock()
	return out, nil
}

func (uc *userCache) one(ctx context.Context, id chat.ID) (chat.User, error) {
	m, err := uc.get(ctx, []chat.ID{id})
	if err != nil {
		return chat.User{}, err
	}
	u, ok := m[id]
	if !ok {
		return chat.User{}, chat.ErrNotFound
	}
	return u, nil
}
