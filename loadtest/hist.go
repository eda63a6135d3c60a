package loadtest

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram buckets are log-linear, as in HdrHistogram: values below
// 2^histSubBits are exact, larger ones fall in buckets whose width is at most
// 1/2^(histSubBits-1) of their lower bound (1.6% for 7 bits). The bucket array
// has a fixed size, so memory stays bounded however many values are recorded.
const (
	histSubBits  = 7
	histSubCount = 1 << histSubBits
	histHalf     = histSubCount / 2
	// 64-bit values need at most 64-histSubBits shifts.
	histBuckets = histSubCount + (64-histSubBits)*histHalf
)

// Histogram records non-negative durations (nanoseconds). It is safe for
// concurrent use: recording is a few atomic operations and no lock.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64
	min    atomic.Uint64 // stored as value+1 so that 0 means "none"
	max    atomic.Uint64
}

// bucketOf maps a value to its bucket index.
func bucketOf(v uint64) int {
	if v < histSubCount {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits
	top := v >> uint(shift) // in [histHalf, histSubCount)
	return histSubCount + (shift-1)*histHalf + int(top-histHalf)
}

// bucketBounds returns the smallest and largest value mapped to bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < histSubCount {
		return uint64(i), uint64(i)
	}
	j := i - histSubCount
	shift := uint(j/histHalf + 1)
	top := uint64(j%histHalf + histHalf)
	lo = top << shift
	return lo, lo + (uint64(1) << shift) - 1
}

// Record adds one duration; negative durations (clock steps) count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(v)
	for {
		old := h.max.Load()
		if v <= old || h.max.CompareAndSwap(old, v) {
			break
		}
	}
	for {
		old := h.min.Load()
		if (old != 0 && v+1 >= old) || h.min.CompareAndSwap(old, v+1) {
			break
		}
	}
}

// Count returns how many values were recorded.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Snapshot returns a serialisable, mergeable copy of the histogram.
func (h *Histogram) Snapshot() HistSnapshot {
	s := HistSnapshot{Count: h.total.Load(), SumNs: h.sum.Load(), MaxNs: h.max.Load()}
	if m := h.min.Load(); m > 0 {
		s.MinNs = m - 1
	}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			s.Buckets = append(s.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return s
}

// HistSnapshot is a histogram frozen for reporting and merging. Buckets holds
// the non-empty buckets as [index, count] pairs in index order.
type HistSnapshot struct {
	Count   uint64      `json:"count"`
	SumNs   uint64      `json:"sum_ns"`
	MinNs   uint64      `json:"min_ns"`
	MaxNs   uint64      `json:"max_ns"`
	Buckets [][2]uint64 `json:"buckets,omitempty"`
}

// Merge adds o's values into s exactly (bucket by bucket).
func (s *HistSnapshot) Merge(o HistSnapshot) {
	if o.Count == 0 {
		return
	}
	if s.Count == 0 || o.MinNs < s.MinNs {
		s.MinNs = o.MinNs
	}
	if o.MaxNs > s.MaxNs {
		s.MaxNs = o.MaxNs
	}
	s.Count += o.Count
	s.SumNs += o.SumNs
	merged := make([][2]uint64, 0, len(s.Buckets)+len(o.Buckets))
	i, j := 0, 0
	for i < len(s.Buckets) || j < len(o.Buckets) {
		switch {
		case j == len(o.Buckets) || (i < len(s.Buckets) && s.Buckets[i][0] < o.Buckets[j][0]):
			merged = append(merged, s.Buckets[i])
			i++
		case i == len(s.Buckets) || o.Buckets[j][0] < s.Buckets[i][0]:
			merged = append(merged, o.Buckets[j])
			j++
		default:
			merged = append(merged, [2]uint64{s.Buckets[i][0], s.Buckets[i][1] + o.Buckets[j][1]})
			i++
			j++
		}
	}
	s.Buckets = merged
}

// Quantile returns the value at quantile q (0..1): the highest value
// equivalent to the bucket holding the q-th value, clamped to [min, max] so
// that p100 is the exact maximum.
func (s HistSnapshot) Quantile(q float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	if q <= 0 {
		return time.Duration(s.MinNs)
	}
	rank := uint64(math.Ceil(q * float64(s.Count)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for _, b := range s.Buckets {
		seen += b[1]
		if seen >= rank {
			_, hi := bucketBounds(int(b[0]))
			hi = min(hi, s.MaxNs)
			hi = max(hi, s.MinNs)
			return time.Duration(hi)
		}
	}
	return time.Duration(s.MaxNs)
}

// Mean returns the exact arithmetic mean.
func (s HistSnapshot) Mean() time.Duration {
	if s.Count == 0 {
		return 0
	}
	return time.Duration(s.SumNs / s.Count)
}

// LatencySummary is the human-facing part of a histogram, in milliseconds.
type LatencySummary struct {
	Count  uint64  `json:"count"`
	MinMs  float64 `json:"min_ms"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// Summary computes the percentiles of s.
func (s HistSnapshot) Summary() LatencySummary {
	return LatencySummary{
		Count:  s.Count,
		MinMs:  ms(time.Duration(s.MinNs)),
		MeanMs: ms(s.Mean()),
		P50Ms:  ms(s.Quantile(0.50)),
		P90Ms:  ms(s.Quantile(0.90)),
		P99Ms:  ms(s.Quantile(0.99)),
		P999Ms: ms(s.Quantile(0.999)),
		MaxMs:  ms(time.Duration(s.MaxNs)),
	}
}
