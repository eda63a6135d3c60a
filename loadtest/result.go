package loadtest

// Result is what one worker (the single process, or one --procs child)
// measured. Results of several workers merge exactly into one.
type Result struct {
	Workers int `json:"workers"`

	ConnectAttempted int64            `json:"connect_attempted"`
	ConnectOK        int64            `json:"connect_ok"`
	ConnectFailed    int64            `json:"connect_failed"`
	ConnectErrors    map[string]int64 `json:"connect_errors,omitempty"`
	// Wall-clock span of the connect phase (Unix ns), for the connect rate.
	ConnectStartNs int64        `json:"connect_start_ns"`
	ConnectEndNs   int64        `json:"connect_end_ns"`
	ConnectLatency HistSnapshot `json:"connect_latency"` // dial to hello

	Dropped     int64            `json:"dropped"` // closed by the server or the network before the end
	DropReasons map[string]int64 `json:"drop_reasons,omitempty"`
	HeldAtEnd   int64            `json:"held_at_end"`

	Sent          int64            `json:"sent"`
	Acked         int64            `json:"acked"`
	SendErrors    map[string]int64 `json:"send_errors,omitempty"` // error frames by code
	WriteErrors   int64            `json:"write_errors"`
	Skipped       int64            `json:"skipped"` // sends not made: too many unacked on that connection
	Unacked       int64            `json:"unacked"` // neither ack nor error by the end
	MaxPaceLagNs  int64            `json:"max_pace_lag_ns"`
	Delivered     int64            `json:"delivered"`      // message frames from another connection
	SelfDelivered int64            `json:"self_delivered"` // message frames echoing the connection's own send
	Foreign       int64            `json:"foreign"`        // message frames not sent by this run
	Expected      int64            `json:"expected"`       // acked sends × (group size − 1)
	FirstDelivNs  int64            `json:"first_delivery_ns"`
	LastDelivNs   int64            `json:"last_delivery_ns"`
	SendStartNs   int64            `json:"send_start_ns"`
	SendEndNs     int64            `json:"send_end_ns"`
	FramesIn      map[string]int64 `json:"frames_in,omitempty"`

	AckLatency HistSnapshot `json:"ack_latency"`
	E2ELatency HistSnapshot `json:"e2e_latency"`

	Processes []ProcUsage `json:"processes,omitempty"`

	Storm *StormResult `json:"storm,omitempty"`
}

// ProcUsage is the CPU one generator process used in a phase.
type ProcUsage struct {
	Role     string  `json:"role"`
	Phase    string  `json:"phase"`
	WallS    float64 `json:"wall_s"`
	CPUS     float64 `json:"cpu_s"`
	Cores    float64 `json:"cores"` // CPU seconds per wall second
	MaxRSSMB float64 `json:"max_rss_mb,omitempty"`
}

func addMap(dst *map[string]int64, src map[string]int64) {
	if len(src) == 0 {
		return
	}
	if *dst == nil {
		*dst = make(map[string]int64, len(src))
	}
	for k, v := range src {
		(*dst)[k] += v
	}
}

func minNonZero(a, b int64) int64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// Merge adds o into r: counters add up, time spans widen, histograms merge
// bucket by bucket.
func (r *Result) Merge(o Result) {
	r.Workers += o.Workers
	r.ConnectAttempted += o.ConnectAttempted
	r.ConnectOK += o.ConnectOK
	r.ConnectFailed += o.ConnectFailed
	addMap(&r.ConnectErrors, o.ConnectErrors)
	r.ConnectStartNs = minNonZero(r.ConnectStartNs, o.ConnectStartNs)
	r.ConnectEndNs = max(r.ConnectEndNs, o.ConnectEndNs)
	r.ConnectLatency.Merge(o.ConnectLatency)
	r.Dropped += o.Dropped
	addMap(&r.DropReasons, o.DropReasons)
	r.HeldAtEnd += o.HeldAtEnd
	r.Sent += o.Sent
	r.Acked += o.Acked
	addMap(&r.SendErrors, o.SendErrors)
	r.WriteErrors += o.WriteErrors
	r.Skipped += o.Skipped
	r.Unacked += o.Unacked
	r.MaxPaceLagNs = max(r.MaxPaceLagNs, o.MaxPaceLagNs)
	r.Delivered += o.Delivered
	r.SelfDelivered += o.SelfDelivered
	r.Foreign += o.Foreign
	r.Expected += o.Expected
	r.FirstDelivNs = minNonZero(r.FirstDelivNs, o.FirstDelivNs)
	r.LastDelivNs = max(r.LastDelivNs, o.LastDelivNs)
	r.SendStartNs = minNonZero(r.SendStartNs, o.SendStartNs)
	r.SendEndNs = max(r.SendEndNs, o.SendEndNs)
	addMap(&r.FramesIn, o.FramesIn)
	r.AckLatency.Merge(o.AckLatency)
	r.E2ELatency.Merge(o.E2ELatency)
	r.Processes = append(r.Processes, o.Processes...)
	if o.Storm != nil {
		if r.Storm == nil {
			r.Storm = &StormResult{}
		}
		r.Storm.Merge(*o.Storm)
	}
}
