package loadtest

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBucketRoundTrip(t *testing.T) {
	vals := []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 123456789, 1 << 40, 1<<63 - 1, 1<<64 - 1}
	for i := 0; i < 10000; i++ {
		vals = append(vals, rand.Uint64()>>uint(rand.IntN(64)))
	}
	for _, v := range vals {
		b := bucketOf(v)
		if b < 0 || b >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", v, b)
		}
		lo, hi := bucketBounds(b)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d with bounds [%d,%d]", v, b, lo, hi)
		}
		if v >= histSubCount && float64(hi-lo+1) > float64(lo)/float64(histHalf)+1 {
			t.Fatalf("bucket %d [%d,%d] wider than 1/%d of its lower bound", b, lo, hi, histHalf)
		}
	}
	// Buckets are contiguous and ordered.
	for i := 1; i < histBuckets; i++ {
		_, prevHi := bucketBounds(i - 1)
		lo, _ := bucketBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("gap between bucket %d (hi %d) and %d (lo %d)", i-1, prevHi, i, lo)
		}
	}
}

// exactQuantile is the reference: the rank-th smallest value of a sorted sample.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(float64(len(sorted))*q + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func TestQuantilesAgainstSortedSample(t *testing.T) {
	var h Histogram
	var sample []time.Duration
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		// Log-normal-ish latencies between ~50µs and ~2s.
		d := time.Duration(50e3 * (1 + r.ExpFloat64()*r.ExpFloat64()*100))
		sample = append(sample, d)
		h.Record(d)
	}
	slices.Sort(sample)
	s := h.Snapshot()
	if s.Count != uint64(len(sample)) {
		t.Fatalf("count %d, want %d", s.Count, len(sample))
	}
	if time.Duration(s.MaxNs) != sample[len(sample)-1] || time.Duration(s.MinNs) != sample[0] {
		t.Fatalf("min/max %d/%d, want %v/%v", s.MinNs, s.MaxNs, sample[0], sample[len(sample)-1])
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		got, want := s.Quantile(q), exactQuantile(sample, q)
		if got < want || float64(got-want) > float64(want)/histHalf+1 {
			t.Errorf("q%.3f = %v, want %v within 1/%d above", q, got, want, histHalf)
		}
	}
	var sum time.Duration
	for _, d := range sample {
		sum += d
	}
	if s.Mean() != sum/time.Duration(len(sample)) {
		t.Errorf("mean %v, want %v", s.Mean(), sum/time.Duration(len(sample)))
	}
}

func TestHistogramEmptyAndSmall(t *testing.T) {
	var h Histogram
	if got := h.Snapshot().Quantile(0.99); got != 0 {
		t.Fatalf("empty p99 = %v", got)
	}
	h.Record(-5) // a clock step must not underflow
	h.Record(3)
	s := h.Snapshot()
	if s.MinNs != 0 || s.MaxNs != 3 || s.Quantile(0.5) != 0 || s.Quantile(1) != 3 {
		t.Fatalf("unexpected snapshot %+v p50=%v", s, s.Quantile(0.5))
	}
}

func TestHistogramConcurrentAndMerge(t *testing.T) {
	var a, b, all Histogram
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				d := time.Duration((g*5000 + i) * 1000)
				if g%2 == 0 {
					a.Record(d)
				} else {
					b.Record(d)
				}
				all.Record(d)
			}
		}(g)
	}
	wg.Wait()
	m := a.Snapshot()
	m.Merge(b.Snapshot())
	want := all.Snapshot()
	if m.Count != want.Count || m.SumNs != want.SumNs || m.MinNs != want.MinNs || m.MaxNs != want.MaxNs {
		t.Fatalf("merged %+v != %+v", m.Summary(), want.Summary())
	}
	if !slices.Equal(m.Buckets, want.Buckets) {
		t.Fatal("merged buckets differ from the histogram of all values")
	}
	var empty HistSnapshot
	empty.Merge(m)
	if empty.Summary() != m.Summary() {
		t.Fatal("merge into empty snapshot changed the summary")
	}
}
