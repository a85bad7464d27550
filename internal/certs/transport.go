package certs

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
)

// acmeTransport logs what the ACME server says went wrong: problem
// documents (with the CA's reason) and challenges it found invalid. With a
// gate, it also lets no new order through without the gate's consent (the
// issuance lock of every name ordered).
type acmeTransport struct {
	next http.RoundTripper
	log  *slog.Logger
	// gate, when set, is asked before every new order (a request whose
	// payload names identifiers); an error refuses the order, and release
	// is called with false when the order failed.
	gate func(ctx context.Context, names []string) (release func(ok bool), err error)

	mu   sync.Mutex
	seen map[string]bool // challenge URLs already logged
}

type acmeProblem struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
}

func (t *acmeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	release := func(bool) {}
	if t.gate != nil && req.Method == http.MethodPost && req.Body != nil {
		names, body, err := orderedNames(req)
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		if len(names) > 0 {
			if release, err = t.gate(req.Context(), names); err != nil {
				t.logRefused(names, err)
				return nil, fmt.Errorf("acme order for %v refused: %w", names, err)
			}
		}
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		release(false)
		t.log.Error("acme request failed", "url", req.URL.Redacted(), "err", err)
		return nil, err
	}
	release(resp.StatusCode < 300)
	ct := resp.Header.Get("Content-Type")
	if !strings.Contains(ct, "json") || resp.ContentLength > 1<<20 {
		return resp, nil
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil {
		return resp, nil
	}
	if resp.StatusCode >= 400 {
		var p acmeProblem
		_ = json.Unmarshal(body, &p)
		level := slog.LevelError
		if strings.HasSuffix(p.Type, ":badNonce") {
			level = slog.LevelDebug // the client retries these
		}
		t.log.Log(req.Context(), level, "acme error", "url", req.URL.Redacted(),
			"status", resp.StatusCode, "type", p.Type, "reason", p.Detail)
		return resp, nil
	}
	var authz struct {
		Status     string `json:"status"`
		Identifier struct {
			Value string `json:"value"`
		} `json:"identifier"`
		Challenges []struct {
			Type  string       `json:"type"`
			URL   string       `json:"url"`
			Error *acmeProblem `json:"error"`
		} `json:"challenges"`
	}
	if json.Unmarshal(body, &authz) != nil {
		return resp, nil
	}
	for _, c := range authz.Challenges {
		if c.Error == nil || t.logged(c.URL) {
			continue
		}
		t.log.Error("acme challenge failed", "name", authz.Identifier.Value,
			"challenge", c.Type, "type", c.Error.Type, "reason", c.Error.Detail)
	}
	return resp, nil
}

// logged reports whether url was logged before, and remembers it.
func (t *acmeTransport) logged(url string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[url] {
		return true
	}
	if len(t.seen) > 1024 {
		clear(t.seen)
	}
	t.seen[url] = true
	return false
}

// orderedNames reads an ACME request's body (returned, since it was
// consumed) and returns the identifiers its JWS payload names, if any: a
// new order (autocert places one per certificate and renewal).
func orderedNames(req *http.Request) (names []string, body []byte, err error) {
	body, err = io.ReadAll(io.LimitReader(req.Body, 1<<20))
	req.Body.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("read acme request: %w", err)
	}
	var jws struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(body, &jws) != nil || jws.Payload == "" {
		return nil, body, nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(jws.Payload)
	if err != nil {
		return nil, body, nil
	}
	var order struct {
		Identifiers []struct {
			Value string `json:"value"`
		} `json:"identifiers"`
	}
	if json.Unmarshal(payload, &order) != nil {
		return nil, body, nil
	}
	for _, id := range order.Identifiers {
		names = append(names, strings.ToLower(id.Value))
	}
	return names, body, nil
}

// logRefused says why an order was not placed.
func (t *acmeTransport) logRefused(names []string, err error) {
	if errors.Is(err, errRenewedElsewhere) {
		t.log.Info("certificate renewed by another lb; this lb adopts it from the cache at its next renewal check", "names", names)
		return
	}
	t.log.Warn("certificate order postponed: no order is placed without the issuance lock, which could not be taken; "+
		"a renewal is retried in 30 to 60 minutes, and the certificate in use stays in use", "names", names, "err", err)
}
