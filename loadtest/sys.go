package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrNoRSS is returned when a process's resident memory cannot be read.
var ErrNoRSS = errors.New("resident memory not available")

// ProcRSS reads VmRSS (bytes) from /proc/PID/status.
func ProcRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoRSS, err)
	}
	return parseVmRSS(b)
}

func parseVmRSS(status []byte) (uint64, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			break
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("%w: no VmRSS line", ErrNoRSS)
}

// ProcCPU reads a process's user+system CPU time from /proc/PID/stat.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(b)
}

func parseProcStatCPU(stat []byte) (time.Duration, error) {
	// The command name (field 2) may hold spaces; fields count from after ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ')': state(3) ... utime is field 14, stime 15 → indices 11, 12.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc stat times")
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// FetchMetrics fetches base/metrics and returns the first sample of every
// metric name (labels ignored).
func FetchMetrics(ctx context.Context, c *http.Client, base string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoRSS, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: /metrics answered %d", ErrNoRSS, resp.StatusCode)
	}
	return parseMetrics(io.LimitReader(resp.Body, 16<<20))
}

// MetricsRSS fetches base/metrics and returns process_resident_memory_bytes.
func MetricsRSS(ctx context.Context, c *http.Client, base string) (uint64, error) {
	m, err := FetchMetrics(ctx, c, base)
	if err != nil {
		return 0, err
	}
	v, ok := m["process_resident_memory_bytes"]
	if !ok {
		return 0, fmt.Errorf("%w: process_resident_memory_bytes not exported", ErrNoRSS)
	}
	return uint64(v), nil
}

// parseMetrics reads the Prometheus text format.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, " {")
		if end <= 0 {
			continue
		}
		name, rest := line[:end], line[end:]
		if strings.HasPrefix(rest, "{") {
			close := strings.LastIndexByte(rest, '}')
			if close < 0 {
				continue
			}
			rest = rest[close+1:]
		}
		f := strings.Fields(rest) // value [timestamp]
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		if _, seen := out[name]; !seen {
			out[name] = v
		}
	}
	return out, sc.Err()
}

func parseMetricValue(r io.Reader, name string) (uint64, error) {
	m, err := parseMetrics(r)
	if err != nil {
		return 0, err
	}
	v, ok := m[name]
	if !ok {
		return 0, fmt.Errorf("%w: %s not exported", ErrNoRSS, name)
	}
	return uint64(v), nil
}
