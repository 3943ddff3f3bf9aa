// Package client is a small typed client of the controller's REST API, used
// by osd, mvcontroller's token commands and the benchmarks.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Error is an error answer of the API.
type Error struct {
	Status     int
	Code       string `json:"code"`
	Message    string `json:"message"`
	Field      string `json:"field"`
	RetryAfter string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("controller answered %d %s", e.Status, e.Message)
	if e.Field != "" {
		s += fmt.Sprintf(" (field %s)", e.Field)
	}
	return s
}

// Client talks to one controller replica.
type Client struct {
	URL   string // e.g. http://127.0.0.1:8080
	Token string
	HTTP  *http.Client
}

// New returns a client with a 30 s timeout.
func New(url, token string) *Client {
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	return &Client{URL: strings.TrimRight(url, "/"), Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Do sends in (JSON, unless nil) and decodes the answer into out (unless
// nil). An error answer is returned as *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		var e struct{ Error Error }
		if json.Unmarshal(b, &e) != nil || e.Error.Message == "" {
			e.Error.Message = strings.TrimSpace(string(b))
		}
		e.Error.Status, e.Error.RetryAfter = res.StatusCode, res.Header.Get("Retry-After")
		return &e.Error
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("client: %s %s: answer is not the expected JSON: %w", method, path, err)
		}
	}
	return nil
}
