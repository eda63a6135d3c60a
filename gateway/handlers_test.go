package gateway

import (
	"encoding/json"
	"testing"

	"github.com/chatcluster/chat"
)

func TestParsePage(t *testing.T) {
	type want struct {
		before, after chat.ID
		limit         int
		emptyBefore   bool
		err           bool
	}
	cases := []struct {
		name string
		json string
		want want
	}{
		{"newest by default", `{}`, want{limit: 50}},
		{"before", `{"before":"300"}`, want{before: 300, limit: 50}},
		{"before as a number", `{"before":300}`, want{before: 300, limit: 50}},
		{"before zero is empty", `{"before":"0"}`, want{limit: 50, emptyBefore: true}},
		{"after zero is the whole history", `{"after":"0"}`, want{after: 1, limit: 50}},
		{"after", `{"after":"77"}`, want{after: 77, limit: 50}},
		{"limit clamped", `{"limit":5000}`, want{limit: 200}},
		{"limit kept", `{"limit":7}`, want{limit: 7}},
		{"both cursors", `{"before":"1","after":"2"}`, want{err: true}},
		{"bad before", `{"before":"x"}`, want{err: true}},
		{"bad after", `{"after":-1}`, want{err: true}},
		{"limit zero", `{"limit":0}`, want{err: true}},
		{"limit not a number", `{"limit":"5"}`, want{err: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var req request
			if err := json.Unmarshal([]byte(tc.json), &req); err != nil {
				t.Fatal(err)
			}
			p, msg := parsePage(req.Before, req.After, req.Limit)
			if tc.want.err {
				if msg == "" {
					t.Fatalf("accepted: %+v", p)
				}
				return
			}
			if msg != "" {
				t.Fatalf("refused: %s", msg)
			}
			if p.Before != tc.want.before || p.After != tc.want.after || p.Limit != tc.want.limit || p.emptyBefore != tc.want.emptyBefore {
				t.Fatalf("page %+v, want %+v", p, tc.want)
			}
		})
	}
}
