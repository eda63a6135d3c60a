package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/storeclient"
)

// A record of a kind the store does not know is terminated with a metric and
// blocks nothing; a record that names its kind "message" is written like one
// without the header.
func TestRecordKinds(t *testing.T) {
	e := newEnv(t)
	b := openBolt(t)
	s := startService(t, e, b, store.ServiceConfig{})
	waitReady(t, s.svc)
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	p := newPublisher(t, e.js)

	before, _ := p.publishN("7", 1, 2)
	publishKind := func(kind chat.EventKind) (chat.Message, uint64) {
		t.Helper()
		m := chat.Message{ID: p.gen.Next(), Conversation: "7", Sender: 1, Body: "kind " + string(kind),
			SentAt: time.Now().UTC().Truncate(time.Millisecond), ClientID: fmt.Sprint("kind-", kind)}
		msg := nats.NewMsg(chat.MsgSubject("7"))
		msg.Data = m.AppendJSON(nil)
		msg.Header.Set(chat.HdrKind, string(kind))
		ack, err := e.js.PublishMsg(t.Context(), msg)
		if err != nil {
			t.Fatal(err)
		}
		return m, ack.Sequence
	}
	unknown, _ := publishKind("reaction-from-the-future")
	tagged, _ := publishKind(chat.EventMessage)
	after, last := p.publishN("7", 1, 2)
	waitAcked(t, e, last)

	got, _, err := c.History(t.Context(), "7", chat.Page{})
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(before, tagged), after...)
	if err := sameIDs(got, want); err != nil {
		t.Fatal(err)
	}
	for _, m := range got {
		if m.ID == unknown.ID {
			t.Fatal("a record of an unknown kind was written")
		}
	}
	if v := metricValue(t, s.reg, "chat_store_records_unknown_kind_total"); v != 1 {
		t.Errorf("unknown_kind_total = %v, want 1", v)
	}
	if v := metricValue(t, s.reg, "chat_store_messages_invalid_total"); v != 1 {
		t.Errorf("invalid_total = %v, want 1", v)
	}
}
