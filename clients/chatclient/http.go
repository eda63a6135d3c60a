package chatclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Auth is the answer to Signup, Login and a refresh.
type Auth struct {
	User  User   `json:"user"`
	Token string `json:"token"`
	// RefreshToken and ExpiresIn (seconds the access token lasts) come with
	// sessions (a v1.1 extension); pass them to Config to have the access
	// token renewed.
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresIn    int    `json:"expires_in,omitempty"`
}

// Signup creates an account (POST /api/v1/signup); displayName may be empty.
func Signup(ctx context.Context, hc *http.Client, baseURL, username, password, displayName string) (Auth, error) {
	body := map[string]string{"username": username, "password": password}
	if displayName != "" {
		body["display_name"] = displayName
	}
	var a Auth
	err := call(ctx, hc, baseURL, "", http.MethodPost, "/signup", body, &a)
	return a, err
}

// Login signs in (POST /api/v1/login).
func Login(ctx context.Context, hc *http.Client, baseURL, username, password string) (Auth, error) {
	var a Auth
	err := call(ctx, hc, baseURL, "", http.MethodPost, "/login", map[string]string{"username": username, "password": password}, &a)
	return a, err
}

// Direct opens (or creates) the direct conversation with a user.
func (c *Client) Direct(ctx context.Context, username string) (Conversation, error) {
	var conv Conversation
	err := c.call(ctx, http.MethodPost, "/conversations/direct", map[string]string{"username": username}, &conv)
	return conv, err
}

// CreateGroup creates a group with the caller and members (usernames).
func (c *Client) CreateGroup(ctx context.Context, title string, members []string) (Conversation, error) {
	var conv Conversation
	err := c.call(ctx, http.MethodPost, "/conversations", map[string]any{"title": title, "members": members}, &conv)
	return conv, err
}

// Conversations lists the user's conversations, most recent activity first.
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	var r struct {
		Conversations []Conversation `json:"conversations"`
	}
	err := c.call(ctx, http.MethodGet, "/conversations", nil, &r)
	return r.Conversations, err
}

// Messages reads one page of history over HTTP; see HistoryQuery.
func (c *Client) Messages(ctx context.Context, conv string, q HistoryQuery) (HistoryPage, error) {
	v := url.Values{}
	if q.Before != "" {
		v.Set("before", q.Before)
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/conversations/" + url.PathEscape(conv) + "/messages"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var r struct {
		Messages   []Message `json:"messages"`
		NextBefore *string   `json:"next_before"`
		NextAfter  *string   `json:"next_after"`
	}
	err := c.call(ctx, http.MethodGet, path, nil, &r)
	return HistoryPage{Messages: r.Messages, NextBefore: r.NextBefore, NextAfter: r.NextAfter}, err
}

// call makes an HTTP call with the access token; with a session, a 401 is
// met with one refresh and one retry (a 401 means the call did nothing).
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	tok := c.Token()
	err := call(ctx, c.http, c.cfg.BaseURL, tok, method, path, body, out)
	var se *ServerError
	if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || !c.hasSession() {
		return err
	}
	if rerr := c.refreshToken(ctx, tok); rerr != nil {
		if errors.Is(rerr, ErrUnauthorized) {
			return rerr
		}
		return err
	}
	return call(ctx, c.http, c.cfg.BaseURL, c.Token(), method, path, body, out)
}

// Logout ends the client's session on the server (all: every session of
// the user) and closes the client. A session already ended is no error.
func (c *Client) Logout(ctx context.Context, all bool) error {
	path := "/logout"
	if all {
		path += "?all=true"
	}
	// The server closes the socket with 4001 as the session ends, which is
	// no expiry to report.
	c.mu.Lock()
	c.loggingOut = true
	c.mu.Unlock()
	err := c.call(ctx, http.MethodPost, path, nil, nil)
	_ = c.Close()
	if errors.Is(err, ErrUnauthorized) {
		return nil
	}
	return err
}

func call(ctx context.Context, hc *http.Client, baseURL, token, method, path string, body, out any) error {
	if hc == nil {
		hc = http.DefaultClient
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(baseURL, "/")+"/api/v1"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("chatclient: %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, readLimit))
	if err != nil {
		return fmt.Errorf("chatclient: %s %s: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(data, &e)
		if e.Error.Code == "" && res.StatusCode == http.StatusUnauthorized {
			e.Error.Code = "unauthorized"
		}
		return &ServerError{Code: e.Error.Code, Message: e.Error.Message, Status: res.StatusCode}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("chatclient: %s %s: decoding the answer: %w", method, path, err)
		}
	}
	return nil
}
