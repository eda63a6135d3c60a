package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"
)

// APIError is an error answer of the HTTP API ({"error":{"code","message"}}).
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("http %d %s: %s", e.Status, e.Code, e.Message)
}

// Retryable tells whether the request may succeed if sent again later.
func (e *APIError) Retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable || e.Status >= 500
}

// User is the protocol's User object, as far as the generator needs it.
type User struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

// API is a minimal client of the HTTP API (/api/v1).
type API struct {
	base string
	hc   *http.Client
}

// NewAPI returns a client for base (e.g. http://127.0.0.1:8080) whose
// connections are dialled by dial and kept alive for reuse by up to
// maxConns parallel requests.
func NewAPI(base string, dial func(ctx context.Context, network, addr string) (net.Conn, error), maxConns int) *API {
	tr := &http.Transport{
		DialContext:         dial,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     30 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	return &API{base: base, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// Close releases idle HTTP connections.
func (a *API) Close() { a.hc.CloseIdleConnections() }

// HTTPClient returns the underlying client (for /metrics).
func (a *API) HTTPClient() *http.Client { return a.hc }

func (a *API) do(ctx context.Context, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		if e.Error.Code == "" {
			e.Error.Code = "http_" + strconv.Itoa(resp.StatusCode)
		}
		return &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// Signup creates a user and returns it with its token.
func (a *API) Signup(ctx context.Context, username, password string) (User, string, error) {
	var out struct {
		User  User   `json:"user"`
		Token string `json:"token"`
	}
	err := a.do(ctx, http.MethodPost, "/api/v1/signup", "", map[string]string{
		"username": username, "password": password, "display_name": username,
	}, &out)
	if err == nil && out.Token == "" {
		err = errors.New("signup answer has no token")
	}
	return out.User, out.Token, err
}

// Login logs an existing user in and returns it with a new token.
func (a *API) Login(ctx context.Context, username, password string) (User, string, error) {
	var out struct {
		User  User   `json:"user"`
		Token string `json:"token"`
	}
	err := a.do(ctx, http.MethodPost, "/api/v1/login", "", map[string]string{
		"username": username, "password": password,
	}, &out)
	if err == nil && out.Token == "" {
		err = errors.New("login answer has no token")
	}
	return out.User, out.Token, err
}

// CreateGroup creates a group conversation of the caller and members.
func (a *API) CreateGroup(ctx context.Context, token, title string, members []string) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	err := a.do(ctx, http.MethodPost, "/api/v1/conversations", token, map[string]any{
		"title": title, "members": members,
	}, &out)
	if err == nil && out.ID == "" {
		err = errors.New("conversation answer has no id")
	}
	return out.ID, err
}

// AddMember adds username to a conversation.
func (a *API) AddMember(ctx context.Context, token, conv, username string) error {
	return a.do(ctx, http.MethodPost, "/api/v1/conversations/"+conv+"/members", token,
		map[string]string{"username": username}, nil)
}

// withRetry runs f until it succeeds, fails for good, or attempts run out;
// overload answers (429, 503) and connection errors are retried with
// exponential backoff.
func withRetry(ctx context.Context, attempts int, f func() error) error {
	backoff := 100 * time.Millisecond
	var err error
	for a := 0; a < attempts; a++ {
		if err = f(); err == nil {
			return nil
		}
		var ae *APIError
		if errors.As(err, &ae) && !ae.Retryable() {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return err
}

// ErrorKey classifies an error into a short, bounded label for the report.
func ErrorKey(err error) string {
	var ae *APIError
	var se wsStatusError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ae):
		return fmt.Sprintf("http_%d_%s", ae.Status, ae.Code)
	case errors.As(err, &se):
		return fmt.Sprintf("upgrade_http_%d", int(se))
	case errors.Is(err, errHelloTimeout):
		return "hello_timeout"
	case errors.Is(err, errNoHello):
		return "first_frame_not_hello"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection_reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_source_port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_open_files"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, syscall.EPIPE):
		return "broken_pipe"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "other"
}
