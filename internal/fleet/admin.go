package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Backend is a backend object of lb's admin API, decoded by DESIGN's field names
// (the fleet keeps its own copy of the wire format, so the e2e tests check lb
// against the spec rather than against lb's own types).
type Backend struct {
	Name      string    `json:"name"`
	URL       string    `json:"url"`
	State     string    `json:"state"`
	Healthy   bool      `json:"healthy"`
	InFlight  int64     `json:"in_flight"`
	Upgraded  int64     `json:"upgraded"`
	ChecksOK  int       `json:"checks_ok"`
	LastCheck time.Time `json:"last_check"`
	LastError string    `json:"last_error"`
	Version   string    `json:"version"`
	Requests  int64     `json:"requests"`
	Failures  int64     `json:"failures"`
}

// Admin is a small client of lb's admin API.
type Admin struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// Admin returns a client of this fleet's lb admin API.
func (f *Fleet) Admin() *Admin {
	return &Admin{BaseURL: f.adminURL, Token: f.token, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// APIError is an admin API answer other than 2xx.
type APIError struct {
	Status int
	Body   string
}

func (e *APIError) Error() string { return fmt.Sprintf("admin API: %d %s", e.Status, e.Body) }

func (a *Admin) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.BaseURL+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return &APIError{Status: resp.StatusCode, Body: string(bytes.TrimSpace(b))}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode %q: %w", method, path, b, err)
		}
	}
	return nil
}

// Backends lists the backends (GET /api/backends).
func (a *Admin) Backends(ctx context.Context) ([]Backend, error) {
	var bs []Backend
	err := a.do(ctx, http.MethodGet, "/api/backends", nil, &bs)
	return bs, err
}

// Backend returns one backend from the list.
func (a *Admin) Backend(ctx context.Context, name string) (Backend, error) {
	bs, err := a.Backends(ctx)
	if err != nil {
		return Backend{}, err
	}
	b, ok := findBackend(bs, name)
	if !ok {
		return Backend{}, fmt.Errorf("backend %q not listed", name)
	}
	return b, nil
}

// Drain drains a backend (POST /api/backends/{name}/drain).
func (a *Admin) Drain(ctx context.Context, name string) (Backend, error) {
	var b Backend
	err := a.do(ctx, http.MethodPost, "/api/backends/"+url.PathEscape(name)+"/drain", nil, &b)
	return b, err
}

// Enable enables a backend (POST /api/backends/{name}/enable).
func (a *Admin) Enable(ctx context.Context, name string) (Backend, error) {
	var b Backend
	err := a.do(ctx, http.MethodPost, "/api/backends/"+url.PathEscape(name)+"/enable", nil, &b)
	return b, err
}

// WaitFor polls the backend list (every 50ms) until ok returns true or ctx ends;
// the error then shows the last list seen.
func (a *Admin) WaitFor(ctx context.Context, ok func([]Backend) bool) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last []Backend
	var lastErr error
	for {
		bs, err := a.Backends(ctx)
		if err == nil && ok(bs) {
			return nil
		}
		if err == nil {
			last = bs
		}
		lastErr = err
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("wait for backends: %w (last error: %v; last list: %s)", context.Cause(ctx), lastErr, describe(last))
		}
	}
}

func findBackend(bs []Backend, name string) (Backend, bool) {
	for _, b := range bs {
		if b.Name == name {
			return b, true
		}
	}
	return Backend{}, false
}

// describe renders a backend list compactly for error messages.
func describe(bs []Backend) string {
	var buf bytes.Buffer
	for i, b := range bs {
		if i > 0 {
			buf.WriteString("; ")
		}
		fmt.Fprintf(&buf, "%s %s healthy=%v version=%q in_flight=%d last_error=%q", b.Name, b.State, b.Healthy, b.Version, b.InFlight, b.LastError)
	}
	return buf.String()
}
