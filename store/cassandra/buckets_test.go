package cassandra

import (
	"slices"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/chatcluster/chat"
)

func TestSplitFor(t *testing.T) {
	for w, want := range map[time.Duration]uint{
		10 * 24 * time.Hour: 16, // 2,545 buckets in 41 bits of ms: room for 16 more bits
		time.Hour:           11,
		time.Minute:         0, // too little room for regions: one width
		time.Millisecond:    0,
	} {
		if got := splitFor(w.Milliseconds()); got != want {
			t.Errorf("splitFor(%v) = %d, want %d", w, got, want)
		}
		if s := splitFor(w.Milliseconds()); s > 0 {
			b := &Backend{widthMS: w.Milliseconds(), split: s}
			if k := b.unit(chat.ID(1<<63 - 1)); k >= 1<<31 {
				t.Errorf("width %v: largest key %d overflows a CQL int", w, k)
			}
		}
	}
}

// TestBucketWidthsCross writes a conversation that is quiet, turns hot and
// cools again, so that its regions get different bucket widths, and pages
// its history forward and backward across them: every message once, in
// order, whatever the page size and cursor.
func TestBucketWidthsCross(t *testing.T) {
	openEmpty(t)
	b, err := Open(t.Context(), Config{Hosts: env.hosts, Keyspace: env.keyspace, Consistency: gocql.One, BucketRows: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.split != 16 {
		t.Fatalf("a new keyspace has split bits %d, want 16", b.split)
	}
	ctx := t.Context()
	region := time.Duration(b.widthMS) * time.Millisecond >> regionSplit // 56.25 min
	r0 := chat.Epoch.Add(1000 * region)
	var all []chat.Message
	add := func(start time.Time, n int, every time.Duration) {
		for i := range n {
			at := start.Add(time.Duration(i) * every)
			id := chat.FirstID(at) + chat.ID(i%4)
			all = append(all, chat.Message{ID: id, Conversation: "hot", Sender: chat.ID(1 + i%3), Body: "m", SentAt: at})
		}
	}
	add(r0, 5, 10*time.Minute)                 // quiet: one region-wide bucket
	add(r0.Add(region), 300, 11*time.Second)   // turns hot: the estimate still sees the quiet past
	add(r0.Add(2*region), 300, 11*time.Second) // stays hot: narrower buckets
	add(r0.Add(3*region), 5, time.Minute)      // cooling
	// Saved in batches as the stream would deliver them.
	for i := 0; i < len(all); i += 64 {
		if err := b.SaveMessages(ctx, all[i:min(i+64, len(all))]); err != nil {
			t.Fatal(err)
		}
	}

	levels := map[int]int{}
	iter := env.admin.Query(`SELECT region, level FROM conversation_bucket_levels WHERE conversation_id = 'hot'`).Iter()
	var rg, lvl int
	for iter.Scan(&rg, &lvl) {
		levels[rg] = lvl
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if len(levels) != 4 {
		t.Fatalf("levels %v, want one per region", levels)
	}
	// Rows per partition in the hot region: more than one bucket, none
	// far over BucketRows.
	hot := int(b.unit(chat.FirstID(r0.Add(2*region))) >> (b.split - regionSplit))
	if levels[hot] <= regionSplit {
		t.Errorf("hot region level %d, want narrower than the region (%d); levels %v", levels[hot], regionSplit, levels)
	}
	rows := map[int]int{}
	for _, m := range all[305:605] {
		k, err := b.msgBucket(ctx, "hot", m.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		rows[k]++
	}
	for k, n := range rows {
		if n > 2*b.cfg.BucketRows {
			t.Errorf("hot bucket %d holds %d messages (BucketRows %d)", k, n, b.cfg.BucketRows)
		}
	}
	if len(rows) < 2 {
		t.Errorf("hot region in %d buckets", len(rows))
	}

	ids := make([]chat.ID, len(all))
	for i, m := range all {
		ids[i] = m.ID
	}
	slices.Sort(ids)
	newest := slices.Clone(ids)
	slices.Reverse(newest)
	for _, size := range []int{1, 7, 50, 1000} {
		// Backward from the newest, each page's last ID the next cursor.
		var got []chat.ID
		p := chat.Page{Limit: size}
		for {
			page, more, err := b.Messages(ctx, "hot", p)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range page {
				got = append(got, m.ID)
			}
			if !more {
				break
			}
			p.Before = page[len(page)-1].ID
		}
		if !slices.Equal(got, newest) {
			t.Errorf("backward, pages of %d: %d IDs, want %d in order", size, len(got), len(newest))
		}
		// Forward from before the first.
		got = nil
		p = chat.Page{Limit: size, After: ids[0] - 1}
		for {
			page, more, err := b.Messages(ctx, "hot", p)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range page {
				got = append(got, m.ID)
			}
			if !more {
				break
			}
			p.After = page[len(page)-1].ID
		}
		if !slices.Equal(got, ids) {
			t.Errorf("forward, pages of %d: %d IDs, want %d in order", size, len(got), len(ids))
		}
	}
	// From cursors on either side of every width change, both ways.
	for _, i := range []int{4, 5, 6, 304, 305, 306, 450, 604, 605, 606} {
		page, _, err := b.Messages(ctx, "hot", chat.Page{Limit: 20, Before: ids[i]})
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(ids[max(0, i-20):i])
		slices.Reverse(want)
		if got := pageIDs(page); !slices.Equal(got, want) {
			t.Errorf("before %d: %v, want %v", i, got, want)
		}
		page, _, err = b.Messages(ctx, "hot", chat.Page{Limit: 20, After: ids[i]})
		if err != nil {
			t.Fatal(err)
		}
		if got := pageIDs(page); !slices.Equal(got, ids[i+1:min(len(ids), i+21)]) {
			t.Errorf("after %d: %v, want %v", i, got, ids[i+1:min(len(ids), i+21)])
		}
	}
	// An edit finds a message in a narrow bucket.
	target := all[450]
	edit := chat.Change{ID: chat.FirstID(r0.Add(4 * region)), Conversation: "hot", Kind: chat.EventEdit, MessageID: target.ID,
		User: target.Sender, At: r0.Add(4 * region), Body: "edited"}
	if err := b.ApplyChanges(ctx, []chat.Change{edit}); err != nil {
		t.Fatal(err)
	}
	page, _, err := b.Messages(ctx, "hot", chat.Page{Limit: 1, Before: target.ID + 1})
	if err != nil || len(page) != 1 || page[0].ID != target.ID || page[0].Body != "edited" {
		t.Errorf("edited message = %+v, %v", page, err)
	}
	// A second backend (another store) agrees with the recorded levels.
	b2, err := Open(ctx, Config{Hosts: env.hosts, Keyspace: env.keyspace, Consistency: gocql.One, BucketRows: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	// A store that loses the claim of a region takes the recorded level.
	k := levelKey{"hot", hot}
	if got, err := b2.claimLevel(ctx, k, regionSplit); err != nil || got != uint(levels[hot]) {
		t.Errorf("losing claim of the hot region = %d, %v; want the recorded %d", got, err, levels[hot])
	}
	for _, m := range all[305:605] {
		k1, _ := b.msgBucket(ctx, "hot", m.ID, true)
		k2, err := b2.msgBucket(ctx, "hot", m.ID, true)
		if err != nil || k1 != k2 {
			t.Fatalf("message %d: bucket %d here, %d in another store (%v)", m.ID, k1, k2, err)
		}
	}
}

func pageIDs(ms []chat.Message) []chat.ID {
	out := make([]chat.ID, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// TestQuietHistoryParallel: a page of a quiet conversation, one message per
// bucket, reads its buckets in a few concurrent rounds, not one after
// another, and gives what the sequential walk gave.
func TestQuietHistoryParallel(t *testing.T) {
	b := openEmpty(t)
	ctx := t.Context()
	var msgs []chat.Message
	for i := range 60 {
		at := chat.Epoch.Add(time.Duration(i+1) * 11 * 24 * time.Hour) // a base bucket each
		msgs = append(msgs, chat.Message{ID: chat.FirstID(at), Conversation: "q", Sender: 1, Body: "m", SentAt: at})
	}
	if err := b.SaveMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	var rounds []int
	b.wave = func(n int) { rounds = append(rounds, n) }
	page, more, err := b.Messages(ctx, "q", chat.Page{Limit: 50})
	if err != nil || !more || len(page) != 50 {
		t.Fatalf("page: %d messages, more %v, %v", len(page), more, err)
	}
	for i, m := range page {
		if m.ID != msgs[59-i].ID {
			t.Fatalf("page[%d] = %d, want %d", i, m.ID, msgs[59-i].ID)
		}
	}
	if len(rounds) > 9 {
		t.Errorf("51 buckets read in %d rounds %v, want at most 9", len(rounds), rounds)
	}
	rounds = nil
	page, more, err = b.Messages(ctx, "q", chat.Page{Limit: 50, After: msgs[3].ID})
	if err != nil || !more || len(page) != 50 || page[0].ID != msgs[4].ID || page[49].ID != msgs[53].ID {
		t.Fatalf("forward page: %d messages, more %v, %v", len(page), more, err)
	}
	if len(rounds) > 9 {
		t.Errorf("forward: %d rounds %v", len(rounds), rounds)
	}
}
