package loadtest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"strconv"
	"testing"
	"time"
)

// serverFrame encodes p as an unmasked server text frame.
func serverFrame(p []byte) []byte {
	b := []byte{0x81}
	switch n := len(p); {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, p...)
}

// repeatReader serves the same bytes over and over.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

// BenchmarkDeliver measures the generator's CPU per delivered message frame
// (frame parsing, classification, latency recording), without system calls:
// the budget that decides how many deliveries per second one core absorbs.
func BenchmarkDeliver(b *testing.B) {
	plan := &Plan{Conns: []PlanConn{{Group: 0, Sender: -1}, {Group: 0, Sender: 0}}, Groups: []PlanGroup{{ID: "1", Members: []int{0, 1}}}}
	w := newWorker(plan, 0, 2, "bench")
	body := appendBody(nil, time.Now().UnixNano(), 1, 64)
	msg := `{"type":"message","message":{"id":"7340032000012345678","conversation":"7340032000012340000","sender":"7340032000012300000","body":"` +
		string(body) + `","sent_at":"2026-11-26T19:10:32.123Z","client_id":"lt-1-` + strconv.Itoa(42) + `"}}`
	var stream bytes.Buffer
	for range 64 {
		stream.Write(serverFrame([]byte(msg)))
	}
	c := &wsConn{idx: 0, r: bufio.NewReaderSize(&repeatReader{data: stream.Bytes()}, 2048)}
	b.ReportAllocs()
	for b.Loop() {
		_, p, err := c.readMessage()
		if err != nil {
			b.Fatal(err)
		}
		w.onFrame(c, p)
	}
	if w.delivered.Load() == 0 {
		b.Fatal("nothing delivered")
	}
}
