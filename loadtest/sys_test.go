package loadtest

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseVmRSS(t *testing.T) {
	got, err := parseVmRSS([]byte("Name:\tchat\nVmPeak:\t  9999 kB\nVmRSS:\t   12345 kB\nThreads: 9\n"))
	if err != nil || got != 12345*1024 {
		t.Fatalf("parseVmRSS = %d, %v", got, err)
	}
	if _, err := parseVmRSS([]byte("Name: x\n")); !errors.Is(err, ErrNoRSS) {
		t.Fatalf("missing VmRSS: %v", err)
	}
	self, err := ProcRSS(os.Getpid())
	if err != nil || self < 1<<20 {
		t.Fatalf("own RSS %d, %v", self, err)
	}
}

func TestParseMetricValue(t *testing.T) {
	text := "# HELP process_resident_memory_bytes Resident memory size in bytes.\n" +
		"# TYPE process_resident_memory_bytes gauge\n" +
		"process_resident_memory_bytes_other 1\n" +
		"process_resident_memory_bytes 1.2345678e+08\n"
	got, err := parseMetricValue(strings.NewReader(text), "process_resident_memory_bytes")
	if err != nil || got != 123456780 {
		t.Fatalf("got %d, %v", got, err)
	}
	got, err = parseMetricValue(strings.NewReader("process_resident_memory_bytes 4096 1700000000000\n"), "process_resident_memory_bytes")
	if err != nil || got != 4096 {
		t.Fatalf("with timestamp: got %d, %v", got, err)
	}
	if _, err := parseMetricValue(strings.NewReader("go_goroutines 3\n"), "process_resident_memory_bytes"); !errors.Is(err, ErrNoRSS) {
		t.Fatalf("absent metric: %v", err)
	}
}

func TestProcStatCPU(t *testing.T) {
	stat := "1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0"
	got, err := parseProcStatCPU([]byte(stat))
	if err != nil || got != 3*time.Second {
		t.Fatalf("got %v, %v; want 3s", got, err)
	}
	if _, err := ProcCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestRaiseNoFile(t *testing.T) {
	n, err := RaiseNoFile()
	if err != nil || n < 64 {
		t.Fatalf("RaiseNoFile = %d, %v", n, err)
	}
}

func TestParseMetrics(t *testing.T) {
	text := "# TYPE go_goroutines gauge\ngo_goroutines 42\n" +
		"chat_gateway_disconnects_total{reason=\"drain\"} 3\nchat_gateway_disconnects_total{reason=\"eof\"} 4\n" +
		"go_memstats_heap_inuse_bytes 1.5e+06\nbroken line\n"
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if m["go_goroutines"] != 42 || m["chat_gateway_disconnects_total"] != 3 || m["go_memstats_heap_inuse_bytes"] != 1.5e6 {
		t.Fatalf("parsed %v", m)
	}
}
