package workers_test

import (
	"context"
	"sync"
	"testing"

	"github.com/chatcluster/chat/gateway/workers"
)

// BenchmarkSchedule is the pool's cost per task: schedule, hand over, run
// an empty task. Run with -cpu to vary the producers.
func BenchmarkSchedule(b *testing.B) {
	p := workers.New(workers.Config{})
	defer p.Close()
	var wg sync.WaitGroup
	task := func() { wg.Done() }
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			wg.Add(1)
			if err := p.ScheduleCtx(ctx, task); err != nil {
				b.Error(err)
				wg.Done()
			}
		}
	})
	wg.Wait()
}

// BenchmarkGoStatement is the baseline: a new goroutine per task.
func BenchmarkGoStatement(b *testing.B) {
	var wg sync.WaitGroup
	task := func() { wg.Done() }
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			wg.Add(1)
			go task()
		}
	})
	wg.Wait()
}
