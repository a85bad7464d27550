package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxResponseBytes bounds what the Client reads from one admin API answer.
const maxResponseBytes = 8 << 20

// Client talks to one lb's admin API.
type Client struct {
	// BaseURL is the admin listener, e.g. http://127.0.0.1:9000.
	BaseURL string
	// Token is the admin bearer token.
	Token string
	// HTTP is the client used (NewHTTPClient makes one with a connect bound); nil means
	// a plain http.Client.
	HTTP *http.Client
	// ConnectTimeout is HTTP's connect bound, as given to NewHTTPClient: errors name it.
	ConnectTimeout time.Duration
	// CallTimeout bounds each call from connect to the end of the answer; past it the
	// call fails with a *NoAnswerError. 0: only ctx bounds calls. Remove waits
	// DrainTimeout longer, as the lb drains the backend before it answers.
	CallTimeout time.Duration
	// DrainTimeout is the lb's drain_timeout, for Remove; 0 means lb's default (30s).
	DrainTimeout time.Duration
}

// Backends lists every backend in configured order.
func (c *Client) Backends(ctx context.Context) ([]Backend, error) {
	var out []Backend
	if err := c.do(ctx, http.MethodGet, "/api/backends", nil, &out); err != nil {
		return nil, fmt.Errorf("list backends: %w", err)
	}
	return out, nil
}

// Backend returns one backend by name.
func (c *Client) Backend(ctx context.Context, name string) (Backend, error) {
	var out Backend
	if err := c.do(ctx, http.MethodGet, "/api/backends/"+url.PathEscape(name), nil, &out); err != nil {
		return Backend{}, fmt.Errorf("get backend %q: %w", name, err)
	}
	return out, nil
}

// Drain stops new requests to the backend; it is idempotent.
func (c *Client) Drain(ctx context.Context, name string) (Backend, error) {
	var out Backend
	if err := c.do(ctx, http.MethodPost, "/api/backends/"+url.PathEscape(name)+"/drain", nil, &out); err != nil {
		return Backend{}, fmt.Errorf("drain %q: %w", name, err)
	}
	return out, nil
}

// Enable puts a drained backend back into rotation; it is idempotent.
func (c *Client) Enable(ctx context.Context, name string) (Backend, error) {
	var out Backend
	if err := c.do(ctx, http.MethodPost, "/api/backends/"+url.PathEscape(name)+"/enable", nil, &out); err != nil {
		return Backend{}, fmt.Errorf("enable %q: %w", name, err)
	}
	return out, nil
}

// Add adds a backend at runtime (an overlay that a reload replaces).
func (c *Client) Add(ctx context.Context, name, rawURL string) (Backend, error) {
	var out Backend
	if err := c.do(ctx, http.MethodPost, "/api/backends", addRequest{Name: name, URL: rawURL}, &out); err != nil {
		return Backend{}, fmt.Errorf("add %q: %w", name, err)
	}
	return out, nil
}

// Remove drains the backend, waits for its in-flight requests (up to the lb's
// drain_timeout) and removes it.
func (c *Client) Remove(ctx context.Context, name string) error {
	drain := c.DrainTimeout
	if drain <= 0 {
		drain = defaultDrainTimeout
	}
	status, data, err := c.sendWithin(ctx, c.CallTimeout+drain, http.MethodDelete, "/api/backends/"+url.PathEscape(name), nil)
	if err == nil {
		err = decodeAnswer(status, data, nil)
	}
	if err != nil {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	return nil
}

// WaitFor polls the backend every poll until cond holds, and returns it then.
// It stops early on ctx or on an API error other than a transient network one.
func (c *Client) WaitFor(ctx context.Context, name string, poll time.Duration, cond func(Backend) bool) (Backend, error) {
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	var lastErr error // of the last call that failed on its own, not because the wait ended
	for {
		b, err := c.Backend(ctx, name)
		if err == nil && cond(b) {
			return b, nil
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			return b, err
		}
		if ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return b, fmt.Errorf("wait for %q: %w (last error: %v)", name, ctx.Err(), lastErr)
			}
			return b, fmt.Errorf("wait for %q: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// WaitIdle polls until the backend has no request in flight.
func (c *Client) WaitIdle(ctx context.Context, name string, poll time.Duration) (Backend, error) {
	return c.WaitFor(ctx, name, poll, func(b Backend) bool { return b.InFlight == 0 })
}

// WaitHealthy polls until the backend is healthy.
func (c *Client) WaitHealthy(ctx context.Context, name string, poll time.Duration) (Backend, error) {
	return c.WaitFor(ctx, name, poll, func(b Backend) bool { return b.Healthy })
}

// Ready asks GET /readyz, which needs no token. It returns the status the lb names and
// whether it answered 200 "ready"; err is for no answer, or an answer that is not /readyz's.
func (c *Client) Ready(ctx context.Context) (ready bool, status Readiness, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+"/readyz", nil)
	if err != nil {
		return false, "", fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return false, "", err
	}
	defer resp.Body.Close()
	var body readyBody
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return false, "", fmt.Errorf("read answer: %w", err)
	}
	if (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable) ||
		json.Unmarshal(data, &body) != nil || body.Status == "" {
		return false, "", fmt.Errorf("GET /readyz: unexpected answer %d %q", resp.StatusCode, truncate(string(data), 80))
	}
	return resp.StatusCode == http.StatusOK && body.Status == Ready, body.Status, nil
}

// httpClient is the client every request goes through: c.HTTP, or a plain one (Go's
// default transport) whose requests are bounded by their context and CallTimeout.
func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{}
}

// truncate cuts s to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Reload asks lb to re-read its config file (as SIGHUP does) and returns
// the outcome. A refused file is not an error of the call: the outcome has
// OK false and Error naming every problem.
func (c *Client) Reload(ctx context.Context) (Reload, error) {
	var out Reload
	status, data, err := c.send(ctx, http.MethodPost, "/api/reload", nil)
	if err != nil {
		return Reload{}, fmt.Errorf("reload: %w", err)
	}
	if status != http.StatusUnprocessableEntity {
		if err := decodeAnswer(status, data, &out); err != nil {
			return Reload{}, fmt.Errorf("reload: %w", err)
		}
		return out, nil
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return Reload{}, fmt.Errorf("reload: decode answer: %w", err)
	}
	return out, nil
}

// Status returns the state of lb as a whole (GET /api/status).
func (c *Client) Status(ctx context.Context) (LBStatus, error) {
	var out LBStatus
	if err := c.do(ctx, http.MethodGet, "/api/status", nil, &out); err != nil {
		return LBStatus{}, fmt.Errorf("lb status: %w", err)
	}
	return out, nil
}

// LastReload returns the outcome of lb's last configuration load.
func (c *Client) LastReload(ctx context.Context) (Reload, error) {
	var out Reload
	if err := c.do(ctx, http.MethodGet, "/api/reload", nil, &out); err != nil {
		return Reload{}, fmt.Errorf("last reload: %w", err)
	}
	return out, nil
}

// do sends one call and decodes a 2xx answer into out (if not nil); any
// other status is an *APIError.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	status, data, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	return decodeAnswer(status, data, out)
}

// send sends one call, bounded by CallTimeout, and returns the status and the (bounded) body.
func (c *Client) send(ctx context.Context, method, path string, in any) (int, []byte, error) {
	return c.sendWithin(ctx, c.CallTimeout, method, path, in)
}

// sendWithin is send with the bound within (0: ctx alone bounds the call).
func (c *Client) sendWithin(parent context.Context, within time.Duration, method, path string, in any) (int, []byte, error) {
	if c.CallTimeout <= 0 {
		within = 0
	}
	ctx, cancel, connected := callContext(parent, within)
	defer cancel()
	var body io.Reader
	if in != nil {
		buf, err := json.Marshal(in)
		if err != nil {
			return 0, nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return 0, nil, fmt.Errorf("build request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, nil, c.callError(parent, ctx, within, connected.Load(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return 0, nil, fmt.Errorf("read answer: %w", c.callError(parent, ctx, within, true, err))
	}
	return resp.StatusCode, data, nil
}

// decodeAnswer turns a non-2xx answer into an *APIError and decodes a 2xx
// one into out (if not nil).
func decodeAnswer(status int, data []byte, out any) error {
	if status < 200 || status > 299 {
		var eb errorBody
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		if msg == "" {
			msg = http.StatusText(status)
		}
		return &APIError{Status: status, Message: msg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
