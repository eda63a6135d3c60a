package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

func decodeMessage(data []byte, msg *chat.Message) error {
	if err := json.Unmarshal(data, msg); err != nil {
		return err
	}
	if msg.ID == 0 || msg.Sender == 0 || !chat.ValidConversationID(msg.Conversation) {
		return errors.New("message without id, sender or conversation")
	}
	return nil
}

// deliver notifies the offline members of msg who have not read it. It
// returns the outcome label, or an error when it could not decide (the
// store or the bucket did not answer): the message is then tried again.
// progress tells JetStream the message is still being worked on.
func (s *Service) deliver(ctx context.Context, msg chat.Message, progress func()) (string, error) {
	states, err := s.store.MemberStates(ctx, msg.Conversation)
	if errors.Is(err, chat.ErrNotFound) {
		return "nobody", nil
	}
	if err != nil {
		return "", err
	}
	var users []chat.ID
	muted := map[chat.ID]bool{}
	for _, st := range states {
		if st.User == msg.Sender || st.LastRead >= msg.ID || s.online.Online(st.User) {
			continue
		}
		users = append(users, st.User)
		muted[st.User] = st.Muted
	}
	if len(users) == 0 {
		return "nobody", nil
	}
	devs, err := s.store.Devices(ctx, users...)
	if err != nil {
		return "", err
	}
	if len(devs) == 0 {
		return "nobody", nil
	}
	full, err := s.render(ctx, msg)
	if err != nil {
		return "", err
	}
	bare := Notification{MessageID: msg.ID, Conversation: msg.Conversation, Sender: msg.Sender, SentAt: msg.SentAt, Muted: true}
	sent := 0
	for _, d := range devs {
		n := full
		if muted[d.User] {
			n = bare
		}
		ok, err := s.notify(ctx, msg, d, n, progress)
		if err != nil {
			return "", err
		}
		if ok {
			sent++
		}
	}
	if sent == 0 {
		return "nobody", nil
	}
	return "notified", nil
}

// render makes the notification of an unmuted conversation: the sender's
// display name, a group's title, the body cut to BodyMax bytes.
func (s *Service) render(ctx context.Context, msg chat.Message) (Notification, error) {
	n := Notification{
		MessageID:    msg.ID,
		Conversation: msg.Conversation,
		Sender:       msg.Sender,
		SentAt:       msg.SentAt,
		Body:         truncate(msg.Body, s.cfg.BodyMax),
	}
	users, err := s.store.Users(ctx, []chat.ID{msg.Sender})
	if err != nil {
		return n, err
	}
	if len(users) == 1 {
		n.SenderName = users[0].DisplayName
	}
	if !strings.Contains(msg.Conversation, "-") { // a group (a direct ID is "<lo>-<hi>")
		c, err := s.store.Conversation(ctx, msg.Conversation)
		if err != nil && !errors.Is(err, chat.ErrNotFound) {
			return n, err
		}
		n.Title = c.Title
	}
	return n, nil
}

// truncate cuts s to at most max bytes at a rune boundary, marking the cut.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// notify sends n to d once: it reports whether the device was sent to now.
// An error means the bucket did not answer and nothing was decided.
func (s *Service) notify(ctx context.Context, msg chat.Message, d chat.Device, n Notification, progress func()) (bool, error) {
	kind := kindWebPush
	if d.Kind == chat.DeviceGateway {
		kind = kindGateway
	}
	key := chat.PushSentKey(msg.ID, chat.DeviceID(d.Token))
	_, err := s.kv.Get(ctx, key)
	switch {
	case err == nil:
		s.m.notifications.WithLabelValues(kind, resultDuplicate).Inc()
		return false, nil
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return false, fmt.Errorf("push: sent record: %w", err)
	}
	err = s.sendRetry(ctx, kind, d, n, progress)
	if ctx.Err() != nil {
		return false, ctx.Err() // shutting down: undecided, the message comes back
	}
	result := resultSent
	switch {
	case err == nil:
		s.m.delay.Observe(time.Since(msg.SentAt).Seconds())
	case errors.Is(err, ErrGone):
		result = resultGone
		if derr := s.deleteDevice(ctx, d); derr != nil {
			s.log.Warn("push: removing a gone device", zap.Error(derr))
		}
	default:
		result = resultDead
		s.m.deadLetters.WithLabelValues(kind).Inc()
		s.log.Warn("push: notification dead-lettered", zap.String("kind", kind), zap.Stringer("message", msg.ID), zap.Error(err))
	}
	s.m.notifications.WithLabelValues(kind, result).Inc()
	// Recorded whatever the result, so a redelivery does not try again.
	if _, err := s.kv.Create(ctx, key, []byte(result)); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		s.log.Warn("push: recording a sent notification", zap.Error(err))
	}
	return result == resultSent, nil
}

func (s *Service) deleteDevice(ctx context.Context, d chat.Device) error {
	_, err := s.store.DeleteDevice(ctx, d.User, d.Token)
	if errors.Is(err, chat.ErrNotFound) {
		return nil // removed or moved meanwhile
	}
	return err
}

// sendRetry sends with retries: exponential backoff with full jitter, or
// the wait a 429/503 asked for. ErrGone and errPermanent end it at once.
func (s *Service) sendRetry(ctx context.Context, kind string, d chat.Device, n Notification, progress func()) error {
	var err error
	for try := range s.cfg.MaxAttempts {
		if try > 0 {
			s.m.retries.WithLabelValues(kind).Inc()
			wait := s.backoff(try)
			var we *waitError
			if errors.As(err, &we) && we.wait > wait {
				wait = min(we.wait, s.cfg.BackoffMax)
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		progress()
		err = s.send(ctx, d, n)
		if err == nil || errors.Is(err, ErrGone) || errors.Is(err, errPermanent) {
			return err
		}
	}
	return err
}

// backoff is the wait before try (1, 2, ...): uniform in
// [0, min(BackoffMax, BackoffBase*2^(try-1))].
func (s *Service) backoff(try int) time.Duration {
	ceil := s.cfg.BackoffBase << min(try-1, 30)
	if ceil <= 0 || ceil > s.cfg.BackoffMax {
		ceil = s.cfg.BackoffMax
	}
	return rand.N(ceil + 1)
}

func (s *Service) send(ctx context.Context, d chat.Device, n Notification) error {
	switch d.Kind {
	case chat.DeviceGateway:
		return s.gw.send(ctx, d, n)
	case chat.DeviceWebPush:
		if s.web == nil {
			return fmt.Errorf("%w: no VAPID keys configured for Web Push", errPermanent)
		}
		return s.web.send(ctx, d, n)
	default:
		return fmt.Errorf("%w: device kind %q", errPermanent, d.Kind)
	}
}
