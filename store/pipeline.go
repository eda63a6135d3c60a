package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// fetchWait bounds one pull request. A stopping Service lets the pull in
// progress end rather than cancel it (messages on the wire would wait
// AckWait for redelivery), so this is also the longest a stop waits for it.
const fetchWait = 250 * time.Millisecond

// pipeline keeps several batch writes in flight, as many as
// ServiceConfig.WritesInFlight: a backend as far away as Cassandra
// persists rate × latency messages at once, and one write at a time leaves
// it idle most of the time. A conversation is in at most one write at a
// time, so its messages are written in stream order and a later batch of
// it coalesces everything that arrived meanwhile (one conversation row
// update for all of them). Every message delivered and not yet settled is
// in the pipeline's hands (pulls ask only for as many as there is room
// for), so its ack deadline is pushed back while it waits or is written:
// JetStream never hands a message being written to another replica.
type pipeline struct {
	s    *Service
	cons jetstream.Consumer

	credits chan struct{} // one per message that may be delivered and not settled
	in      chan jetstream.Msg
	fetchMu sync.Mutex
	fetchEr error

	queues   map[string][]jetstream.Msg // waiting, by subject (conversation)
	order    []string                   // subjects with waiting messages, oldest first
	busy     map[string]bool            // subjects in a write
	ready    int                        // waiting messages of subjects not busy
	flying   map[*job]bool
	first    time.Time // when the oldest ready message arrived
	last     time.Time // when the last message arrived
	finished chan *job
}

type job struct {
	msgs     []jetstream.Msg
	subjects []string
}

func newPipeline(s *Service, cons jetstream.Consumer) *pipeline {
	p := &pipeline{
		s: s, cons: cons,
		credits:  make(chan struct{}, s.cfg.Prefetch),
		in:       make(chan jetstream.Msg, s.cfg.Prefetch),
		queues:   map[string][]jetstream.Msg{},
		busy:     map[string]bool{},
		flying:   map[*job]bool{},
		finished: make(chan *job, s.cfg.WritesInFlight),
	}
	for range s.cfg.Prefetch {
		p.credits <- struct{}{}
	}
	return p
}

// run consumes until stop ends or pulling fails; then it writes what it
// holds (cut short only when work ends) and returns the pull error.
func (p *pipeline) run(stop, work context.Context) error {
	var fetcher sync.WaitGroup
	fetcher.Go(func() { p.fetch(stop, work) })
	defer fetcher.Wait()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	beat := time.NewTicker(max(p.s.cfg.AckWait/3, time.Millisecond))
	defer beat.Stop()
	in := p.in
	for {
		select {
		case m, ok := <-in:
			if !ok {
				in = nil // fetching ended: write the rest, then return
				break
			}
			p.add(m)
		case j := <-p.finished:
			p.settle(j)
		case <-timer.C:
		case <-beat.C:
			p.inProgress()
		}
		p.launch(work, in == nil, timer)
		if in == nil && len(p.flying) == 0 && len(p.order) == 0 {
			p.fetchMu.Lock()
			defer p.fetchMu.Unlock()
			return p.fetchEr
		}
	}
}

// fetch pulls as many messages as there is room for and hands them to run;
// it closes p.in when it ends.
func (p *pipeline) fetch(stop, work context.Context) {
	defer close(p.in)
	for stop.Err() == nil {
		select {
		case <-p.credits:
		case <-stop.Done():
			return
		}
		n := 1
	more:
		for n < p.s.cfg.Prefetch {
			select {
			case <-p.credits:
				n++
			default:
				break more
			}
		}
		batch, err := p.cons.Fetch(n, jetstream.FetchMaxWait(fetchWait))
		got := 0
		if err == nil {
			for m := range batch.Messages() {
				p.in <- m
				got++
			}
			err = batch.Error()
		}
		for range n - got {
			p.credits <- struct{}{}
		}
		switch {
		case err == nil, errors.Is(err, jetstream.ErrNoHeartbeat), errors.Is(err, jetstream.ErrNoMessages):
		case work.Err() != nil:
			return
		default:
			p.fetchMu.Lock()
			p.fetchEr = fmt.Errorf("consume: %w", err)
			p.fetchMu.Unlock()
			return
		}
	}
}

func (p *pipeline) add(m jetstream.Msg) {
	now := time.Now()
	subj := m.Subject()
	q, had := p.queues[subj]
	p.queues[subj] = append(q, m)
	if !had {
		p.order = append(p.order, subj)
	}
	if !p.busy[subj] {
		if p.ready == 0 {
			p.first = now
		}
		p.ready++
	}
	p.last = now
}

// launch starts writes while there is room and a batch is due: full, or
// its oldest message waited BatchLinger, or no message came for BatchIdle
// (a quiet stream is written at once), or fetching ended.
func (p *pipeline) launch(work context.Context, flush bool, timer *time.Timer) {
	for p.ready > 0 && len(p.flying) < p.s.cfg.WritesInFlight {
		now := time.Now()
		due := flush || p.ready >= p.s.cfg.BatchSize ||
			now.Sub(p.first) >= p.s.cfg.BatchLinger || now.Sub(p.last) >= p.s.cfg.BatchIdle
		if !due {
			timer.Reset(min(p.first.Add(p.s.cfg.BatchLinger).Sub(now), p.last.Add(p.s.cfg.BatchIdle).Sub(now)))
			return
		}
		j := p.take()
		p.flying[j] = true
		go func() { // ends by handing j back to run, which waits for every job
			p.s.dispatch(work, j.msgs)
			p.finished <- j
		}()
	}
}

// take makes a batch of up to BatchSize waiting messages of subjects not in
// a write, oldest subjects first, and marks their subjects busy.
func (p *pipeline) take() *job {
	j := &job{}
	kept := p.order[:0]
	for _, subj := range p.order {
		if p.busy[subj] || len(j.msgs) >= p.s.cfg.BatchSize {
			kept = append(kept, subj)
			continue
		}
		q := p.queues[subj]
		n := min(len(q), p.s.cfg.BatchSize-len(j.msgs))
		j.msgs = append(j.msgs, q[:n]...)
		j.subjects = append(j.subjects, subj)
		p.busy[subj] = true
		p.ready -= len(q) // the rest of q waits for this write
		if n < len(q) {
			p.queues[subj] = q[n:]
			kept = append(kept, subj)
		} else {
			delete(p.queues, subj)
		}
	}
	p.order = kept
	p.first = time.Now()
	return j
}

// settle frees a finished write's subjects and room for its messages.
func (p *pipeline) settle(j *job) {
	delete(p.flying, j)
	for _, subj := range j.subjects {
		delete(p.busy, subj)
		if n := len(p.queues[subj]); n > 0 {
			if p.ready == 0 {
				p.first = time.Now()
			}
			p.ready += n
		}
	}
	for range j.msgs {
		p.credits <- struct{}{}
	}
}

// inProgress pushes back the ack deadline of every message held: waiting
// or being written. Acked ones refuse it, harmlessly.
func (p *pipeline) inProgress() {
	for _, q := range p.queues {
		for _, m := range q {
			_ = m.InProgress()
		}
	}
	for j := range p.flying {
		for _, m := range j.msgs {
			if err := m.InProgress(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
				p.s.log.Debug("in progress", zap.Error(err))
			}
		}
	}
}
