package loadtest

import (
	"math"
	"time"
)

// Schedule spreads a total rate over several senders so that the senders'
// sends, taken together, are evenly spaced: sender k sends at
// start + k/rate + n*senders/rate for n = 0, 1, ... while before the end.
// It is pure arithmetic, so every process of a --procs run computes the same
// global schedule from the same start time.
type Schedule struct {
	Start    time.Time
	Duration time.Duration
	Rate     float64 // total messages per second, > 0
	Senders  int     // > 0
}

// Interval is the time between two sends of one sender.
func (s Schedule) Interval() time.Duration {
	return time.Duration(float64(s.Senders) / s.Rate * 1e9)
}

// At returns when sender k sends its n-th message (n from 0), and whether that
// time is still inside the run.
func (s Schedule) At(k int, n int64) (time.Time, bool) {
	off := (float64(k) + float64(n)*float64(s.Senders)) / s.Rate * 1e9
	if off >= float64(s.Duration) || off > math.MaxInt64 {
		return time.Time{}, false
	}
	return s.Start.Add(time.Duration(off)), true
}

// Count returns how many messages sender k sends in the whole run.
func (s Schedule) Count(k int) int64 {
	// Smallest n with (k + n*S)/R >= D, computed in floating point, then
	// corrected against At so the two never disagree.
	n := int64(math.Ceil((s.Duration.Seconds()*s.Rate - float64(k)) / float64(s.Senders)))
	n = max(n, 0)
	for n > 0 {
		if _, ok := s.At(k, n-1); ok {
			break
		}
		n--
	}
	for {
		if _, ok := s.At(k, n); !ok {
			return n
		}
		n++
	}
}

// Total returns how many messages all senders send in the whole run.
func (s Schedule) Total() int64 {
	var t int64
	for k := 0; k < s.Senders; k++ {
		t += s.Count(k)
	}
	return t
}
