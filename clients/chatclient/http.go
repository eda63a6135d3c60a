package chatclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Auth is the answer to Signup and Login.
type Auth struct {
	User  User   `json:"user"`
	Token string `json:"token"`
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

func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	return call(ctx, c.http, c.cfg.BaseURL, c.cfg.Token, method, path, body, out)
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
