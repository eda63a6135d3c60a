package push

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/chatcluster/chat"
)

// The push gateway of the Matrix push gateway API (the shape Sygnal
// implements): POST <url>, normally .../_matrix/push/v1/notify, one
// notification for one device; the gateway answers 200 with the pushkeys it
// rejected, which are gone for good.

// matrixNotify is the request body.
type matrixNotify struct {
	Notification matrixNotification `json:"notification"`
}

type matrixNotification struct {
	EventID           string         `json:"event_id"`
	RoomID            string         `json:"room_id"`
	Type              string         `json:"type,omitempty"`
	Sender            string         `json:"sender,omitempty"`
	SenderDisplayName string         `json:"sender_display_name,omitempty"`
	RoomName          string         `json:"room_name,omitempty"`
	Prio              string         `json:"prio"`
	Content           *matrixContent `json:"content,omitempty"`
	Counts            matrixCounts   `json:"counts"`
	Devices           []matrixDevice `json:"devices"`
}

type matrixContent struct {
	MsgType string `json:"msgtype"`
	Body    string `json:"body"`
}

type matrixCounts struct {
	Unread int `json:"unread"`
}

type matrixDevice struct {
	AppID     string         `json:"app_id"`
	Pushkey   string         `json:"pushkey"`
	PushkeyTS int64          `json:"pushkey_ts,omitempty"`
	Data      map[string]any `json:"data,omitempty"`
}

type matrixResponse struct {
	Rejected []string `json:"rejected"`
}

// gateway sends to DeviceGateway devices through one push gateway URL.
type gateway struct {
	client *http.Client
	url    string
}

// body renders n for d. A muted conversation's notification carries the
// IDs only, at low priority, like Matrix's event_id_only format: the app
// learns there is something new without any text to show.
func gatewayBody(d chat.Device, n Notification) ([]byte, error) {
	mn := matrixNotification{
		EventID: n.MessageID.String(),
		RoomID:  n.Conversation,
		Prio:    "high",
		Counts:  matrixCounts{Unread: 1},
		Devices: []matrixDevice{{AppID: d.AppID, Pushkey: d.Token, PushkeyTS: d.CreatedAt.Unix()}},
	}
	if n.Muted {
		mn.Prio = "low"
	} else {
		mn.Type = "m.room.message"
		mn.Sender = n.Sender.String()
		mn.SenderDisplayName = n.SenderName
		mn.RoomName = n.Title
		mn.Content = &matrixContent{MsgType: "m.text", Body: n.Body}
	}
	return json.Marshal(matrixNotify{Notification: mn})
}

func (g *gateway) send(ctx context.Context, d chat.Device, n Notification) error {
	if g.url == "" {
		return fmt.Errorf("%w: no push gateway configured for app %q", errPermanent, d.AppID)
	}
	body, err := gatewayBody(d, n)
	if err != nil {
		return fmt.Errorf("%w: encode: %v", errPermanent, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusNotFound {
			// The gateway's endpoint, not the device, is missing: a
			// configuration error that retrying will not mend.
			return fmt.Errorf("%w: push gateway %s: status 404", errPermanent, g.url)
		}
		return statusErr(resp)
	}
	var mr matrixResponse
	if err := json.Unmarshal(raw, &mr); err != nil {
		return fmt.Errorf("push gateway: bad answer: %v", err) // retried
	}
	for _, k := range mr.Rejected {
		if k == d.Token {
			return fmt.Errorf("%w: pushkey rejected by the gateway", ErrGone)
		}
	}
	return nil
}

// retryAfter wraps err with the delay a 429 or 503 asked for, if any.
func retryAfter(resp *http.Response, err error) error {
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return err
	}
	if secs, perr := strconv.Atoi(v); perr == nil && secs >= 0 {
		return &waitError{err: err, wait: time.Duration(secs) * time.Second}
	}
	if t, perr := http.ParseTime(v); perr == nil {
		return &waitError{err: err, wait: time.Until(t)}
	}
	return err
}

// waitError is a retryable error that says how long to wait.
type waitError struct {
	err  error
	wait time.Duration
}

func (e *waitError) Error() string { return e.err.Error() }
func (e *waitError) Unwrap() error { return e.err }
