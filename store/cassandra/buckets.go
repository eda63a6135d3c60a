package cassandra

import (
	"context"
	"errors"
	"math/bits"
	"strconv"
	"sync"
	"time"

	"github.com/gocql/gocql"

	"github.com/chatcluster/chat"
)

// Bucket width per conversation (issue 12, schema/migrations/0007).
//
// Time since chat.Epoch is counted in units of BucketWidth / 2^split
// (split: the keyspace's bucket_split_bits setting, fixed when the
// keyspace is first opened; 0 for keyspaces made before this scheme, which
// then keep one width for every conversation, the old numbering). A
// conversation's time is cut into regions of 2^(split-regionLevel) units
// (BucketWidth/256 by default: 56 minutes for 10-day buckets), and each
// region has a level L in [regionLevel, split]: its messages live in
// buckets of 2^(split-L) units, so level regionLevel is one bucket for the
// whole region and each level more halves the width, down to one unit
// (13 s for 10-day buckets).
//
// A bucket's key (conversation_buckets.bucket, messages.bucket) is its
// first unit. Within a region all buckets have one width and tile it;
// regions tile time; so buckets never overlap and their keys sort by time.
// Readers therefore need no widths: history walks the recorded keys in
// order, exactly as it did with one width, and a cursor's position is its
// unit (every bucket starting at or before it).
//
// Choosing a width: the first store to write into a region of a
// conversation estimates the conversation's rate from its newest bucket
// before the region (up to levelSample message IDs: how many, over how
// long up to now) and takes the widest level whose buckets would hold at
// most BucketRows messages at that rate. It records the choice with
// INSERT ... IF NOT EXISTS in conversation_bucket_levels, a lightweight
// transaction, so concurrent stores (and a store that crashed mid-way and
// a redelivery) agree: the loser of the race takes the recorded level,
// never its own estimate. A store caches the levels it has seen; a level is
// never changed once recorded, so the cache cannot go stale.
//
// The estimate looks back one bucket, so a conversation that turns hot in
// the middle of a region keeps that region's width until the next region
// (at most BucketWidth/256), and then narrows.

// Defaults of the bucket scheme.
const (
	// DefaultBucketRows is Config.BucketRows' default: a quarter of the
	// 100,000 rows guidance leaves room for a rate estimate that is low by
	// 4x, and 25,000 messages of chat.MaxBody bytes stay near 100 MB.
	DefaultBucketRows = 25_000
	// maxSplit is the most halvings of BucketWidth: 2^16 units.
	maxSplit = 16
	// regionSplit is the level of a region: BucketWidth / 2^8.
	regionSplit = 8
	// levelSample is how many message IDs a width estimate reads.
	levelSample = 1000
)

// splitFor returns the split bits a new keyspace gets for a bucket width:
// as many as keep every bucket key of a chat.ID (41 bits of milliseconds)
// inside a CQL int, at most maxSplit; 0 (one width) when that leaves no
// room for regions.
func splitFor(widthMS int64) uint {
	maxBase := (int64(1) << 41) / widthMS
	s := 31 - bits.Len64(uint64(maxBase))
	if s > maxSplit {
		s = maxSplit
	}
	if s <= regionSplit {
		return 0
	}
	return uint(s)
}

// unit returns the unit of an ID: its milliseconds since chat.Epoch times
// 2^split, divided by the bucket width.
func (b *Backend) unit(id chat.ID) int64 {
	ms := id.Time().UnixMilli() - chat.Epoch.UnixMilli()
	return (ms << b.split) / b.widthMS
}

// regionLevel is the level of one bucket per region (0 without split).
func (b *Backend) regionLevel() uint { return min(regionSplit, b.split) }

// keyAt returns the key of the bucket of level lvl that holds unit u.
func (b *Backend) keyAt(u int64, lvl uint) int {
	return int(u &^ (int64(1)<<(b.split-lvl) - 1))
}

// bucket returns the region-wide bucket key of an ID (the only key when
// the keyspace has one width). The change log (message_changes) is
// bucketed by it; messages go through msgBucket.
func (b *Backend) bucket(id chat.ID) int {
	return b.keyAt(b.unit(id), b.regionLevel())
}

type levelKey struct {
	conv   string
	region int
}

// msgBucket returns the messages bucket of an ID of conv. With claim, a
// region without a recorded level gets one (writers); without, such a
// region holds no message and the region-wide key is returned (readers).
func (b *Backend) msgBucket(ctx context.Context, conv string, id chat.ID, claim bool) (int, error) {
	u := b.unit(id)
	if b.split == 0 {
		return int(u), nil
	}
	lvl, err := b.level(ctx, conv, id, u, claim)
	if err != nil {
		return 0, err
	}
	return b.keyAt(u, lvl), nil
}

// level returns the recorded level of the region of unit u, claiming it
// (see the top of this file) when claim is set and none is recorded.
func (b *Backend) level(ctx context.Context, conv string, id chat.ID, u int64, claim bool) (uint, error) {
	k := levelKey{conv, int(u >> (b.split - b.regionLevel()))}
	if lvl, ok := b.levels.get(k); ok {
		return lvl, nil
	}
	var lvl int
	err := b.q(ctx, `SELECT level FROM conversation_bucket_levels WHERE conversation_id = ? AND region = ?`, conv, k.region).Scan(&lvl)
	switch {
	case err == nil:
		b.levels.put(k, uint(lvl))
		return uint(lvl), nil
	case !errors.Is(err, gocql.ErrNotFound):
		return 0, err
	case !claim:
		return b.regionLevel(), nil
	}
	want, err := b.estimate(ctx, conv, id, b.keyAt(u, b.regionLevel()))
	if err != nil {
		return 0, err
	}
	return b.claimLevel(ctx, k, want)
}

// claimLevel records want as the level of region k unless one is recorded,
// and returns the recorded one.
func (b *Backend) claimLevel(ctx context.Context, k levelKey, want uint) (uint, error) {
	conv := k.conv
	prev := map[string]any{}
	applied, err := b.q(ctx, `INSERT INTO conversation_bucket_levels (conversation_id, region, level) VALUES (?, ?, ?) IF NOT EXISTS`,
		conv, k.region, int(want)).MapScanCAS(prev)
	if err != nil {
		return 0, err
	}
	got := want
	if !applied {
		p, ok := prev["level"].(int)
		if !ok {
			return 0, errors.New("conversation_bucket_levels: claim lost without a level")
		}
		got = uint(p)
	}
	b.levels.put(k, got)
	return got, nil
}

// estimate chooses the level of a new region starting at key start from
// the conversation's newest bucket before it: n messages from the oldest
// of them up to id make a rate, and the widest level whose buckets would
// hold at most BucketRows at that rate is chosen.
func (b *Backend) estimate(ctx context.Context, conv string, id chat.ID, start int) (uint, error) {
	lvl := b.regionLevel()
	var prev int
	err := b.q(ctx, `SELECT bucket FROM conversation_buckets WHERE conversation_id = ? AND bucket < ? LIMIT 1`, conv, start).Scan(&prev)
	if errors.Is(err, gocql.ErrNotFound) {
		return lvl, nil
	}
	if err != nil {
		return 0, err
	}
	iter := b.q(ctx, `SELECT message_id FROM messages WHERE conversation_id = ? AND bucket = ? LIMIT ?`,
		conv, prev, levelSample).PageSize(levelSample).Iter()
	var (
		n      int64
		oldest int64
		mid    int64
	)
	for iter.Scan(&mid) {
		n++
		oldest = mid
	}
	if err := iter.Close(); err != nil {
		return 0, err
	}
	if n < 2 {
		return lvl, nil
	}
	span := id.Time().Sub(chat.ID(oldest).Time())
	if span < time.Millisecond {
		span = time.Millisecond
	}
	// Messages per bucket of level lvl: n/span * (width / 2^lvl).
	width := time.Duration(b.widthMS) * time.Millisecond
	for lvl < b.split && float64(n)*float64(width>>lvl)/float64(span) > float64(b.cfg.BucketRows) {
		lvl++
	}
	return lvl, nil
}

// levelCache remembers recorded region levels; they never change, so it
// is never stale. Bounded: it starts over when full, which costs reads.
type levelCache struct {
	mu sync.Mutex
	m  map[levelKey]uint
}

const levelCacheMax = 100_000

func (c *levelCache) get(k levelKey) (uint, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[k]
	return l, ok
}

func (c *levelCache) put(k levelKey, l uint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= levelCacheMax {
		c.m = make(map[levelKey]uint)
	}
	c.m[k] = l
}

// claimSplit fixes the keyspace's split bits: a keyspace whose bucket
// width this backend just recorded (fresh) gets splitFor(width); one that
// had it already was made before the scheme and keeps 0 (its buckets are
// numbered by whole widths). Concurrent first opens agree through the
// lightweight transaction: all take the recorded value.
func (b *Backend) claimSplit(ctx context.Context, fresh bool) error {
	want := uint(0)
	if fresh {
		want = splitFor(b.widthMS)
	}
	prev := map[string]any{}
	applied, err := b.q(ctx, `INSERT INTO settings (name, value) VALUES ('bucket_split_bits', ?) IF NOT EXISTS`,
		strconv.Itoa(int(want))).MapScanCAS(prev)
	if err != nil {
		return wrap("checking bucket split", err)
	}
	if applied {
		b.split = want
		return nil
	}
	v, err := strconv.Atoi(toString(prev["value"]))
	if err != nil || v < 0 || v > maxSplit {
		return errors.Join(ErrSchema, err)
	}
	b.split = uint(v)
	return nil
}
