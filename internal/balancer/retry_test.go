package balancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout awaiting response headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"refused", &dialError{err: syscall.ECONNREFUSED}, reasonDial},
		{"dial timeout", &dialError{err: context.DeadlineExceeded}, reasonDial},
		{"wrapped dial", fmt.Errorf("round trip: %w", &dialError{err: errors.New("x")}), reasonDial},
		{"header timeout", fmt.Errorf("proxy: %w", timeoutErr{}), reasonTimeout},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, reasonReset},
		{"eof", io.EOF, reasonReset},
		{"unexpected eof", io.ErrUnexpectedEOF, reasonReset},
	}
	for _, tt := range tests {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("%s: classify(%v) = %q, want %q", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		reason, method string
		replayable     bool
		want           bool
	}{
		{reasonDial, http.MethodPost, true, true},
		{reasonDial, http.MethodPatch, true, true},
		{reasonDial, http.MethodGet, true, true},
		{reasonDial, http.MethodPost, false, false},
		{reasonReset, http.MethodGet, true, true},
		{reasonReset, http.MethodHead, true, true},
		{reasonReset, http.MethodOptions, true, true},
		{reasonReset, http.MethodTrace, true, true},
		{reasonReset, http.MethodPut, true, true},
		{reasonReset, http.MethodDelete, true, true},
		{reasonReset, http.MethodPut, false, false},
		{reasonReset, http.MethodPost, true, false},
		{reasonReset, http.MethodPatch, true, false},
		{reasonReset, "LOCK", true, false},
		{reasonReset, "get", true, false},
		{reasonTimeout, http.MethodGet, true, true},
		{reasonTimeout, http.MethodPost, true, false},
		{reasonTimeout, http.MethodConnect, true, false},
	}
	for _, tt := range tests {
		if got := retryable(tt.reason, tt.method, tt.replayable); got != tt.want {
			t.Errorf("retryable(%s, %s, replayable=%v) = %v, want %v", tt.reason, tt.method, tt.replayable, got, tt.want)
		}
	}
}

func TestErrorStatus(t *testing.T) {
	tests := []struct {
		reason string
		want   int
	}{
		{reasonDial, http.StatusBadGateway},
		{reasonReset, http.StatusBadGateway},
		{reasonTimeout, http.StatusGatewayTimeout},
	}
	for _, tt := range tests {
		if got, _ := errorStatus(tt.reason); got != tt.want {
			t.Errorf("errorStatus(%s) = %d, want %d", tt.reason, got, tt.want)
		}
	}
}

// fakeClock is a settable time source.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestRetryBudget(t *testing.T) {
	tests := []struct {
		name     string
		ratio    float64
		requests int // in the current second
		tries    int
		want     int // retries allowed
	}{
		{"floor applies with few requests", 0.2, 10, 50, 30},
		{"share of many requests", 0.2, 1000, 500, 200},
		{"zero ratio keeps the floor", 0, 1000, 100, 30},
		{"fewer tries than budget", 0.5, 100, 20, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1_000_000, 0)}
			b := newRetryBudget(clk.now)
			for range tt.requests {
				b.request()
			}
			got := 0
			for range tt.tries {
				if b.allow(tt.ratio) {
					got++
				}
			}
			if got != tt.want {
				t.Errorf("allowed %d retries, want %d", got, tt.want)
			}
		})
	}
}

func TestRetryBudgetSlides(t *testing.T) {
	clk := &fakeClock{t: time.Unix(2_000_000, 0)}
	b := newRetryBudget(clk.now)
	allowed := func(n int) int {
		got := 0
		for range n {
			if b.allow(0.1) {
				got++
			}
		}
		return got
	}
	if got := allowed(40); got != 30 {
		t.Fatalf("first second: allowed %d, want 30 (floor 3/s over 10 s)", got)
	}
	clk.t = clk.t.Add(5 * time.Second)
	if got := allowed(10); got != 0 {
		t.Fatalf("5 s later: allowed %d, want 0 (still in the window)", got)
	}
	clk.t = clk.t.Add(5 * time.Second) // the first second left the window
	if got := allowed(40); got != 30 {
		t.Fatalf("10 s later: allowed %d, want 30", got)
	}
	for range 1000 {
		b.request()
	}
	if got := allowed(100); got != 70 {
		t.Errorf("after 1000 requests at 0.1: allowed %d more, want 70 (100 in all)", got)
	}
}
