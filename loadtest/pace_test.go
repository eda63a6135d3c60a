package loadtest

import (
	"slices"
	"testing"
	"time"
)

func TestScheduleEvenlySpaced(t *testing.T) {
	start := time.Unix(1000, 0)
	s := Schedule{Start: start, Duration: 2 * time.Second, Rate: 1000, Senders: 7}
	var all []time.Time
	for k := 0; k < s.Senders; k++ {
		var n int64
		for ; ; n++ {
			at, ok := s.At(k, n)
			if !ok {
				break
			}
			if at.Before(start) || !at.Before(start.Add(s.Duration)) {
				t.Fatalf("sender %d send %d at %v outside the run", k, n, at)
			}
			all = append(all, at)
		}
		if n != s.Count(k) {
			t.Fatalf("sender %d: At stops after %d sends, Count says %d", k, n, s.Count(k))
		}
	}
	if len(all) != 2000 || s.Total() != 2000 {
		t.Fatalf("%d sends (Total %d), want 2000 at 1000/s for 2s", len(all), s.Total())
	}
	slices.SortFunc(all, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(all); i++ {
		gap := all[i].Sub(all[i-1])
		if gap < time.Millisecond-time.Microsecond || gap > time.Millisecond+time.Microsecond {
			t.Fatalf("gap %v between sends %d and %d, want 1ms", gap, i-1, i)
		}
	}
	if got := s.Interval(); got != 7*time.Millisecond {
		t.Fatalf("interval %v, want 7ms", got)
	}
}

func TestScheduleMoreSendersThanSends(t *testing.T) {
	s := Schedule{Start: time.Unix(0, 0), Duration: time.Second, Rate: 3, Senders: 10}
	if got := s.Total(); got != 3 {
		t.Fatalf("total %d, want 3", got)
	}
	for k := 3; k < 10; k++ {
		if s.Count(k) != 0 {
			t.Fatalf("sender %d sends %d, want 0", k, s.Count(k))
		}
	}
}

func TestScheduleFractionalRate(t *testing.T) {
	s := Schedule{Start: time.Unix(0, 0), Duration: 10 * time.Second, Rate: 0.5, Senders: 1}
	if got := s.Total(); got != 5 {
		t.Fatalf("total %d, want 5", got)
	}
}
