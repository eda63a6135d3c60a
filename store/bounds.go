package store

import "github.com/chatcluster/chat"

// Replies are bounded in bytes as well as in count (chat.MaxPageBytes): a
// store reply is one NATS message, and max_payload refuses anything larger,
// which used to turn a page of long messages into "unavailable" for good.

// fitMessages returns how many of msgs, from the first, fit in budget
// bytes of JSON; at least one, so that a page always moves its cursor.
func fitMessages(msgs []chat.Message, budget int) int {
	var scratch []byte
	used := 0
	for i := range msgs {
		scratch = msgs[i].AppendJSON(scratch[:0])
		used += len(scratch) + 1 // the comma
		if used > budget && i > 0 {
			return i
		}
	}
	return len(msgs)
}

// summaryBytes is an upper estimate of one summary's JSON in a reply.
func summaryBytes(s *chat.Summary) int {
	n := 256 + len(s.ID) + 6*len(s.Title) + 21*len(s.Members)
	if s.LastMessage != nil {
		n += len(s.LastMessage.AppendJSON(nil))
	}
	return n
}

// fitSummaries returns how many of list, from the first, fit in budget
// bytes; at least one.
func fitSummaries(list []chat.Summary, budget int) int {
	used := 0
	for i := range list {
		used += summaryBytes(&list[i])
		if used > budget && i > 0 {
			return i
		}
	}
	return len(list)
}
