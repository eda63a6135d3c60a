package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// Consent and per-user limits (issue 14): who may add a user to a group,
// blocks, and bounds on groups created and members added per hour and on
// groups per user. They live in two JetStream key-value buckets that only
// the store uses, so every store replica enforces them alike (cluster-wide)
// and both backends share them: chat.UserPrefsBucket (settings, blocks,
// membership counts; kept) and chat.UserCountsBucket (hourly counters;
// expire).
//
// Keys: policy.<user>, block.<user>.<target>, groups.<user>;
// created.<user>.<hour>, added.<user>.<hour>.

// kvBuckets opens the buckets on first use and keeps them.
type kvBuckets struct {
	mu     sync.Mutex
	prefs  jetstream.KeyValue
	counts jetstream.KeyValue
}

func (s *Service) buckets(ctx context.Context) (prefs, counts jetstream.KeyValue, err error) {
	s.kv.mu.Lock()
	defer s.kv.mu.Unlock()
	if s.kv.prefs == nil {
		kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: chat.UserPrefsBucket, History: 1, Replicas: s.cfg.KVReplicas,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("%w: prefs bucket: %w", chat.ErrUnavailable, err)
		}
		s.kv.prefs = kv
	}
	if s.kv.counts == nil {
		kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: chat.UserCountsBucket, History: 1, Replicas: s.cfg.KVReplicas, TTL: 2 * time.Hour,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("%w: counts bucket: %w", chat.ErrUnavailable, err)
		}
		s.kv.counts = kv
	}
	return s.kv.prefs, s.kv.counts, nil
}

// getInt reads a counter; a missing key is 0.
func getInt(ctx context.Context, kv jetstream.KeyValue, key string) (int, uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%w: read %s: %w", chat.ErrUnavailable, key, err)
	}
	n, err := strconv.Atoi(string(e.Value()))
	if err != nil {
		return 0, e.Revision(), nil // a damaged counter counts from 0
	}
	return n, e.Revision(), nil
}

// addInt adds delta to the counter key unless the result would pass limit
// (ErrLimited, nothing changed); a result under 0 is 0. Concurrent adds
// from any replica are serialised by compare-and-set.
func addInt(ctx context.Context, kv jetstream.KeyValue, key string, delta, limit int, what string) error {
	for range 50 {
		n, rev, err := getInt(ctx, kv, key)
		if err != nil {
			return err
		}
		if delta > 0 && n+delta > limit {
			return fmt.Errorf("%w: %s: %d of %d", chat.ErrLimited, what, n, limit)
		}
		v := []byte(strconv.Itoa(max(n+delta, 0)))
		if rev == 0 {
			_, err = kv.Create(ctx, key, v)
		} else {
			_, err = kv.Update(ctx, key, v, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return fmt.Errorf("%w: write %s: %w", chat.ErrUnavailable, key, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: %s: contended", chat.ErrUnavailable, key)
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

func hourKey(kind string, user chat.ID, t time.Time) string {
	return fmt.Sprintf("%s.%d.%d", kind, user, t.Unix()/3600)
}

func (s *Service) addPolicy(ctx context.Context, req storeclient.AddPolicyRequest) (any, error) {
	if req.User == 0 {
		return nil, fmt.Errorf("%w: user id 0", chat.ErrInvalid)
	}
	p, err := s.policyOf(ctx, req.User)
	if err != nil {
		return nil, err
	}
	return storeclient.AddPolicyResponse{Policy: p}, nil
}

func (s *Service) policyOf(ctx context.Context, user chat.ID) (storeclient.AddPolicy, error) {
	prefs, _, err := s.buckets(ctx)
	if err != nil {
		return "", err
	}
	e, err := prefs.Get(ctx, fmt.Sprintf("policy.%d", user))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return storeclient.AddAnyone, nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: policy: %w", chat.ErrUnavailable, err)
	}
	if p := storeclient.AddPolicy(e.Value()); p.Valid() {
		return p, nil
	}
	return storeclient.AddAnyone, nil
}

func (s *Service) setAddPolicy(ctx context.Context, req storeclient.SetAddPolicyRequest) (any, error) {
	if req.User == 0 || !req.Policy.Valid() {
		return nil, fmt.Errorf("%w: policy %q: anyone, contacts or nobody", chat.ErrInvalid, req.Policy)
	}
	prefs, _, err := s.buckets(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := prefs.Put(ctx, fmt.Sprintf("policy.%d", req.User), []byte(req.Policy)); err != nil {
		return nil, fmt.Errorf("%w: policy: %w", chat.ErrUnavailable, err)
	}
	return storeclient.AddPolicyResponse{Policy: req.Policy}, nil
}

func (s *Service) block(ctx context.Context, req storeclient.BlockRequest) (any, error) {
	switch {
	case req.User == 0 || req.Target == 0:
		return nil, fmt.Errorf("%w: block needs two users", chat.ErrInvalid)
	case req.User == req.Target:
		return nil, fmt.Errorf("%w: cannot block oneself", chat.ErrInvalid)
	}
	prefs, _, err := s.buckets(ctx)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("block.%d.%d", req.User, req.Target)
	if !req.On {
		if err := prefs.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("%w: unblock: %w", chat.ErrUnavailable, err)
		}
		return storeclient.BlocksResponse{}, nil
	}
	if err := s.checkUsers(ctx, []chat.ID{req.Target}); err != nil {
		return nil, err
	}
	list, err := s.blockList(ctx, req.User)
	if err != nil {
		return nil, err
	}
	if len(list) >= storeclient.MaxBlocks && !slices.Contains(list, req.Target) {
		return nil, fmt.Errorf("%w: at most %d blocked users", chat.ErrTooMany, storeclient.MaxBlocks)
	}
	if _, err := prefs.Put(ctx, key, []byte("1")); err != nil {
		return nil, fmt.Errorf("%w: block: %w", chat.ErrUnavailable, err)
	}
	return storeclient.BlocksResponse{}, nil
}

func (s *Service) blockList(ctx context.Context, user chat.ID) ([]chat.ID, error) {
	prefs, _, err := s.buckets(ctx)
	if err != nil {
		return nil, err
	}
	prefix := fmt.Sprintf("block.%d.", user)
	lister, err := prefs.ListKeysFiltered(ctx, prefix+"*")
	if err != nil {
		return nil, fmt.Errorf("%w: blocks: %w", chat.ErrUnavailable, err)
	}
	out := []chat.ID{}
	for k := range lister.Keys() {
		if id, err := strconv.ParseUint(strings.TrimPrefix(k, prefix), 10, 64); err == nil {
			out = append(out, chat.ID(id))
		}
	}
	slices.Sort(out)
	return out, nil
}

// blocks reports whether user blocks target.
func (s *Service) blocks(ctx context.Context, user, target chat.ID) (bool, error) {
	prefs, _, err := s.buckets(ctx)
	if err != nil {
		return false, err
	}
	_, err = prefs.Get(ctx, fmt.Sprintf("block.%d.%d", user, target))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("%w: block: %w", chat.ErrUnavailable, err)
	}
	return true, nil
}

func (s *Service) blockedList(ctx context.Context, req storeclient.BlocksRequest) (any, error) {
	if req.User == 0 {
		return nil, fmt.Errorf("%w: user id 0", chat.ErrInvalid)
	}
	if req.Target != 0 {
		a, err := s.blocks(ctx, req.User, req.Target)
		if err != nil {
			return nil, err
		}
		b, err := s.blocks(ctx, req.Target, req.User)
		if err != nil {
			return nil, err
		}
		return storeclient.BlocksResponse{Blocked: []chat.ID{}, Either: a || b}, nil
	}
	list, err := s.blockList(ctx, req.User)
	if err != nil {
		return nil, err
	}
	return storeclient.BlocksResponse{Blocked: list}, nil
}

// consentParallel bounds the lookups of one request's checks.
const consentParallel = 32

// mayAdd checks that by may add every one of users to a group: none of
// them blocks by, and each one's policy allows by (anyone; contacts: a
// direct conversation of the two exists; nobody). ErrNotAllowed names the
// first user refused.
func (s *Service) mayAdd(ctx context.Context, by chat.ID, users []chat.ID) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(consentParallel)
	for _, u := range users {
		if u == by {
			continue
		}
		g.Go(func() error {
			blocked, err := s.blocks(gctx, u, by)
			if err != nil {
				return err
			}
			if blocked {
				return fmt.Errorf("%w: user %s does not accept being added by %s", chat.ErrNotAllowed, u, by)
			}
			p, err := s.policyOf(gctx, u)
			if err != nil {
				return err
			}
			switch p {
			case storeclient.AddNobody:
				return fmt.Errorf("%w: user %s does not accept being added to groups", chat.ErrNotAllowed, u)
			case storeclient.AddContacts:
				ok, err := s.isContact(gctx, u, by)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("%w: user %s accepts being added by their contacts only", chat.ErrNotAllowed, u)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// countGroup charges by's hourly counters for a group created with n
// other members, or (created false) for n members added; ErrLimited when
// either would pass its bound, and then nothing is charged.
func (s *Service) countGroup(ctx context.Context, by chat.ID, created bool, n int) error {
	_, counts, err := s.buckets(ctx)
	if err != nil {
		return err
	}
	t := now()
	if created {
		if err := addInt(ctx, counts, hourKey("created", by, t), 1, s.cfg.GroupsPerHour, "groups created this hour"); err != nil {
			return err
		}
	}
	if n == 0 {
		return nil
	}
	err = addInt(ctx, counts, hourKey("added", by, t), n, s.cfg.MembersPerHour, "members added this hour")
	if err != nil && created {
		_ = addInt(ctx, counts, hourKey("created", by, t), -1, s.cfg.GroupsPerHour, "groups created this hour")
	}
	return err
}

// uncountGroup gives back what countGroup charged, for a request that
// then failed: a refused request uses up nothing.
func (s *Service) uncountGroup(ctx context.Context, by chat.ID, created bool, n int) {
	_, counts, err := s.buckets(ctx)
	if err != nil {
		return
	}
	t := now()
	if created {
		_ = addInt(ctx, counts, hourKey("created", by, t), -1, s.cfg.GroupsPerHour, "groups created this hour")
	}
	if n > 0 {
		_ = addInt(ctx, counts, hourKey("added", by, t), -n, s.cfg.MembersPerHour, "members added this hour")
	}
}

// joinGroups counts a group more for each of users: ErrTooMany (for the
// one who adds) when one of them is in MaxGroupsPerUser groups already;
// then the users counted are counted back. The counters are updated in
// parallel (a group starts with up to 1,000 members).
func (s *Service) joinGroups(ctx context.Context, users []chat.ID) error {
	prefs, _, err := s.buckets(ctx)
	if err != nil {
		return err
	}
	// Not cancelled when one fails: an update cut short could land
	// without being counted back.
	counted := make([]bool, len(users))
	var g errgroup.Group
	g.SetLimit(consentParallel)
	for i, u := range users {
		g.Go(func() error {
			err := addInt(ctx, prefs, fmt.Sprintf("groups.%d", u), 1, s.cfg.MaxGroupsPerUser, "groups of the user")
			if errors.Is(err, chat.ErrLimited) {
				return fmt.Errorf("%w: user %s is in %d groups, the most a user may be in", chat.ErrTooMany, u, s.cfg.MaxGroupsPerUser)
			}
			counted[i] = err == nil
			return err
		})
	}
	if err := g.Wait(); err != nil {
		var back []chat.ID
		for i, ok := range counted {
			if ok {
				back = append(back, users[i])
			}
		}
		s.leaveGroups(context.WithoutCancel(ctx), back)
		return err
	}
	return nil
}

// leaveGroups counts a group less for each of users.
func (s *Service) leaveGroups(ctx context.Context, users []chat.ID) {
	prefs, _, err := s.buckets(ctx)
	if err != nil {
		return
	}
	var g errgroup.Group
	g.SetLimit(consentParallel)
	for _, u := range users {
		g.Go(func() error {
			_ = addInt(ctx, prefs, fmt.Sprintf("groups.%d", u), -1, s.cfg.MaxGroupsPerUser, "groups of the user")
			return nil
		})
	}
	_ = g.Wait()
}

// isContact reports whether other is one of user's contacts: their direct
// conversation exists and user took part in it (started it, or has read
// in it). Anyone can open a direct conversation with anyone, so its mere
// existence would let a stranger pass.
func (s *Service) isContact(ctx context.Context, user, other chat.ID) (bool, error) {
	c, err := s.b.Conversation(ctx, chat.DirectID(user, other))
	if errors.Is(err, chat.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if c.CreatedBy == user {
		return true, nil
	}
	states, err := s.b.MemberStates(ctx, c.ID)
	if err != nil {
		return false, err
	}
	for _, st := range states {
		if st.User == user && st.LastRead != 0 {
			return true, nil
		}
	}
	return false, nil
}
