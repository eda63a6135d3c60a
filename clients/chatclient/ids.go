package chatclient

import "strings"

// CompareIDs compares two message IDs as unsigned 64-bit decimals without
// parsing them: the longer (after leading zeros) is larger, equal lengths
// compare lexically. It returns -1, 0 or 1.
func CompareIDs(a, b string) int {
	a = trimZeros(a)
	b = trimZeros(b)
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func trimZeros(s string) string {
	t := strings.TrimLeft(s, "0")
	if t == "" && s != "" {
		return "0"
	}
	return t
}

// seenIDs remembers the message IDs of one conversation that were
// delivered, to deliver each once. It forgets the oldest beyond max: a
// message that old does not come again (catch-up asks only after the
// newest known ID).
type seenIDs struct {
	ids   map[string]struct{}
	order []string
	max   int
}

// add reports whether id is new, and remembers it.
func (s *seenIDs) add(id string) bool {
	if s.ids == nil {
		s.ids = make(map[string]struct{})
	}
	if _, ok := s.ids[id]; ok {
		return false
	}
	s.ids[id] = struct{}{}
	s.order = append(s.order, id)
	if s.max > 0 && len(s.order) > s.max {
		drop := len(s.order) - s.max
		for _, old := range s.order[:drop] {
			delete(s.ids, old)
		}
		s.order = append(s.order[:0:0], s.order[drop:]...)
	}
	return true
}
