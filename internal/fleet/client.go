package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"strings"
	"time"
)

// ClientOptions configure Fleet.Client.
type ClientOptions struct {
	// LocalAddr is the source address of the client's connections (e.g. 127.0.0.2);
	// the zero Addr lets the system choose.
	LocalAddr netip.Addr
	// Cookies gives the client a cookie jar.
	Cookies bool
	// Timeout bounds each whole request; default 30s.
	Timeout time.Duration
	// HTTP1 stops the client from negotiating HTTP/2.
	HTTP1 bool
}

// Client returns a new HTTP client (its own connections) that trusts lb's self-signed
// certificate.
func (f *Fleet) Client(o ClientOptions) *http.Client {
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	if o.LocalAddr.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: o.LocalAddr.AsSlice()}
	}
	tr := &http.Transport{
		DialContext:         d.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: f.certPool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   !o.HTTP1,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	if o.HTTP1 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	c := &http.Client{Transport: tr, Timeout: o.Timeout}
	if o.Cookies {
		jar, _ := cookiejar.New(nil) // never fails without options
		c.Jar = jar
	}
	return c
}

// ErrBroken marks a response that started (status and headers arrived) but whose
// body broke off: lb cannot retry it once bytes went out, so the load generator
// counts it apart from failures.
var ErrBroken = errors.New("response broken mid-body")

// Do sends req with c, reads the whole body, and returns it. Inside a load it notes
// when the headers arrived (Result.HeaderMax). It sets an X-Request-ID
// (load-<random>) when req has none. A transport error or a status other than want is
// an error naming the request id; a body that breaks off wraps ErrBroken.
func Do(c *http.Client, req *http.Request, want int) ([]byte, *http.Response, error) {
	id := req.Header.Get("X-Request-ID")
	if id == "" {
		r, err := randomHex(8)
		if err != nil {
			return nil, nil, err
		}
		id = "load-" + r
		req.Header.Set("X-Request-ID", id)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s (request %s): %w", req.Method, req.URL.Path, id, err)
	}
	defer resp.Body.Close()
	noteHeaders(req.Context())
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return body, resp, fmt.Errorf("%s %s (request %s, status %d, %d bytes read): %w: %v", req.Method, req.URL.Path, id, resp.StatusCode, len(body), ErrBroken, err)
	}
	if resp.StatusCode != want {
		return body, resp, fmt.Errorf("%s %s (request %s): status %d, want %d: %s", req.Method, req.URL.Path, id, resp.StatusCode, want, snippet(body))
	}
	return body, resp, nil
}

// Get is Do for a GET of url.
func Get(ctx context.Context, c *http.Client, url string, want int) ([]byte, *http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	return Do(c, req, want)
}

// snippet shortens a body for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
