package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// clRaw is a bare WebSocket for the cluster's change scenario: frames as
// maps, read in order.
type clRaw struct {
	c *websocket.Conn
}

func dialRawCluster(ctx context.Context, addr, token string) (*clRaw, error) {
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": []string{"Bearer " + token}},
	})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(8 << 20)
	return &clRaw{c: c}, nil
}

func (r *clRaw) write(ctx context.Context, v any) error {
	b, _ := json.Marshal(v)
	return r.c.Write(ctx, websocket.MessageText, b)
}

// await reads until a frame of type typ for which match holds.
func (r *clRaw) await(ctx context.Context, typ string, match func(map[string]any) bool) (map[string]any, error) {
	for {
		_, b, err := r.c.Read(ctx)
		if err != nil {
			return nil, fmt.Errorf("waiting for %s: %w", typ, err)
		}
		var f map[string]any
		if json.Unmarshal(b, &f) != nil || f["type"] != typ {
			continue
		}
		if match == nil || match(f) {
			return f, nil
		}
	}
}

func idIs(id string) func(map[string]any) bool {
	return func(f map[string]any) bool { return f["id"] == id }
}

// clChangesScenario: an edit, a deletion and a reaction made through one
// gateway reach a member on the other gateway live, and the history read
// back through that other gateway (from Cassandra, through the store) has
// them. Its own conversation, so the other scenarios' history checks see
// only what they sent.
func (e *clusterEnv) clChangesScenario(ctx context.Context, gwA, gwB *clNode, tokA, tokB, userB string) error {
	var cv clConv
	if code, body, err := e.api(gwA.addr, "POST", "/conversations/direct", tokA, map[string]string{"username": userB}, &cv); err != nil || code != http.StatusOK {
		return fmt.Errorf("direct conversation: %d %s %v", code, body, err)
	}
	a, err := dialRawCluster(ctx, gwA.addr, tokA)
	if err != nil {
		return err
	}
	defer a.c.CloseNow()
	b, err := dialRawCluster(ctx, gwB.addr, tokB)
	if err != nil {
		return err
	}
	defer b.c.CloseNow()
	if _, err := a.await(ctx, "hello", nil); err != nil {
		return err
	}
	if _, err := b.await(ctx, "hello", nil); err != nil {
		return err
	}
	send := func(id, body string) (string, error) {
		if err := a.write(ctx, map[string]string{"type": "send", "id": id, "conversation": cv.ID, "client_id": id, "body": body}); err != nil {
			return "", err
		}
		f, err := a.await(ctx, "ack", idIs(id))
		if err != nil {
			return "", err
		}
		m, _ := f["message"].(map[string]any)
		mid, _ := m["id"].(string)
		return mid, nil
	}
	m1, err := send("ch-1", "the first, with a typo")
	if err != nil {
		return err
	}
	m2, err := send("ch-2", "the second, soon deleted")
	if err != nil {
		return err
	}
	steps := []struct {
		by  *clRaw
		req map[string]string
	}{
		{a, map[string]string{"type": "edit", "id": "ch-e", "conversation": cv.ID, "message_id": m1, "body": "the first, fixed", "client_id": "ch-e"}},
		{a, map[string]string{"type": "delete", "id": "ch-d", "conversation": cv.ID, "message_id": m2, "client_id": "ch-d"}},
		{b, map[string]string{"type": "react", "id": "ch-r", "conversation": cv.ID, "message_id": m1, "emoji": "👍", "client_id": "ch-r"}},
	}
	for _, s := range steps {
		if err := s.by.write(ctx, s.req); err != nil {
			return err
		}
		if f, err := s.by.await(ctx, "ack", idIs(s.req["id"])); err != nil {
			return err
		} else if f["change"] == nil {
			return fmt.Errorf("%s acked without its change: %v", s.req["type"], f)
		}
	}
	// The other gateway's member sees the edit and the deletion live.
	for _, kind := range []string{"edit", "delete"} {
		if _, err := b.await(ctx, "change", func(f map[string]any) bool {
			c, _ := f["change"].(map[string]any)
			return c["kind"] == kind
		}); err != nil {
			return fmt.Errorf("live %s on the other gateway: %w", kind, err)
		}
	}
	// History through the other gateway: the store has them in Cassandra.
	var page struct {
		Messages []struct {
			ID        string `json:"id"`
			Body      string `json:"body"`
			Deleted   bool   `json:"deleted"`
			EditedAt  string `json:"edited_at"`
			Reactions []struct {
				Emoji string `json:"emoji"`
				Count int    `json:"count"`
			} `json:"reactions"`
		} `json:"messages"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, err := e.api(gwB.addr, "GET", "/conversations/"+cv.ID+"/messages?limit=10", tokB, nil, &page)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("history: %d %s %v", code, body, err)
		}
		var problems []string
		seen := 0
		for _, m := range page.Messages {
			switch m.ID {
			case m1:
				seen++
				if m.Body != "the first, fixed" || m.EditedAt == "" {
					problems = append(problems, fmt.Sprintf("edited message: %q edited_at %q", m.Body, m.EditedAt))
				}
				if len(m.Reactions) != 1 || m.Reactions[0].Emoji != "👍" || m.Reactions[0].Count != 1 {
					problems = append(problems, fmt.Sprintf("reactions %+v", m.Reactions))
				}
			case m2:
				seen++
				if !m.Deleted || m.Body != "" {
					problems = append(problems, fmt.Sprintf("deleted message: deleted=%v body %q", m.Deleted, m.Body))
				}
			}
		}
		if seen != 2 {
			problems = append(problems, fmt.Sprintf("%d of the 2 messages in history", seen))
		}
		if len(problems) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("history through the other gateway: %s", strings.Join(problems, "; "))
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
	}
}
