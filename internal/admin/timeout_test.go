package admin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// timeoutErr is a net.Error that says it is a timeout, as a dialer's is.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClientTimeouts(t *testing.T) {
	silent := lbtest.SilentServer(t)
	blackhole := &http.Client{Transport: &http.Transport{
		// A dial that never completes, as to an address that drops every packet.
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { <-ctx.Done(); return nil, ctx.Err() },
	}}
	dialTimeout := &http.Client{Transport: &http.Transport{
		// The dialer's own bound running out, as NewHTTPClient's does.
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}
		},
	}}
	tests := []struct {
		name          string
		client        *Client
		call          func(c *Client) error
		wantConnected bool
		wantAfter     time.Duration
	}{
		{"accepts, never answers", &Client{BaseURL: silent, CallTimeout: 300 * time.Millisecond,
			HTTP: NewHTTPClient(time.Second, nil), ConnectTimeout: time.Second},
			func(c *Client) error { _, err := c.Backends(context.Background()); return err }, true, 300 * time.Millisecond},
		{"a drain too", &Client{BaseURL: silent, CallTimeout: 300 * time.Millisecond},
			func(c *Client) error { _, err := c.Drain(context.Background(), "app-1"); return err }, true, 300 * time.Millisecond},
		{"remove waits the drain_timeout longer", &Client{BaseURL: silent, CallTimeout: 100 * time.Millisecond, DrainTimeout: 300 * time.Millisecond},
			func(c *Client) error { return c.Remove(context.Background(), "app-1") }, true, 400 * time.Millisecond},
		{"no connection within the call's bound", &Client{BaseURL: "http://192.0.2.1:9000", CallTimeout: 300 * time.Millisecond, HTTP: blackhole},
			func(c *Client) error { _, err := c.Backends(context.Background()); return err }, false, 300 * time.Millisecond},
		{"the connect bound", &Client{BaseURL: "http://192.0.2.1:9000", CallTimeout: time.Minute, HTTP: dialTimeout, ConnectTimeout: 3 * time.Second},
			func(c *Client) error { _, err := c.Backends(context.Background()); return err }, false, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := tt.call(tt.client)
			took := time.Since(start)
			var na *NoAnswerError
			if !errors.As(err, &na) {
				t.Fatalf("got %v (%T), want a *NoAnswerError", err, err)
			}
			if na.Connected != tt.wantConnected || na.After != tt.wantAfter {
				t.Errorf("got connected %t after %s, want %t after %s", na.Connected, na.After, tt.wantConnected, tt.wantAfter)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%v wraps context.DeadlineExceeded: a caller would take it for its own deadline", err)
			}
			if took > 10*time.Second {
				t.Errorf("the call took %s: the bound did not hold", took)
			}
			want := "no answer within "
			if !tt.wantConnected {
				want = "no connection within "
			}
			if !strings.Contains(err.Error(), want+tt.wantAfter.String()) {
				t.Errorf("error %q, want it to say %q", err, want+tt.wantAfter.String())
			}
		})
	}
}

// A refused connection is not a timeout, and the caller's own deadline stays the
// caller's: a wait that ends is not reported as an lb that did not answer.
func TestClientTimeoutsLeaveOtherErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	c := &Client{BaseURL: closed, CallTimeout: time.Second}
	_, err = c.Backends(context.Background())
	var na *NoAnswerError
	if err == nil || errors.As(err, &na) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("closed port: got %v, want connection refused", err)
	}

	c = &Client{BaseURL: lbtest.SilentServer(t), CallTimeout: 200 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Backends(ctx); !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &na) {
		t.Errorf("caller's deadline first: got %v, want context.DeadlineExceeded", err)
	}
	// A wait is a loop of bounded calls: it ends at its own deadline and says what the lb did.
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = c.WaitIdle(ctx, "app-1", 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last error: get backend \"app-1\": no answer within 200ms") {
		t.Errorf("WaitIdle on a silent lb: got %v, want its deadline and the last call's error", err)
	}
}
