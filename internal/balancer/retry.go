package balancer

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// Retry reasons, the values of lb_retries_total's reason label.
const (
	reasonDial    = "dial"    // never reached the backend (connect or TLS handshake failed)
	reasonReset   = "reset"   // connection broke after the request was (maybe) sent
	reasonTimeout = "timeout" // no response headers within per_try_timeout
)

// classify names the kind of a transport error of one attempt.
func classify(err error) string {
	var de *dialError
	if errors.As(err, &de) {
		return reasonDial
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return reasonTimeout
	}
	return reasonReset
}

// idempotent reports whether a request with this method may be sent twice (explicit allowlist).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// retryable decides whether a failed attempt may be tried again on another backend.
// replayable means the request body can be sent again (none, buffered, or untouched).
// A dial error is retryable for any method; a reset or timeout only for idempotent methods.
func retryable(reason, method string, replayable bool) bool {
	if !replayable {
		return false
	}
	switch reason {
	case reasonDial:
		return true
	case reasonReset, reasonTimeout:
		return idempotent(method)
	}
	return false
}

// errorStatus maps the last failure of a request to the status the client gets.
func errorStatus(reason string) (int, string) {
	if reason == reasonTimeout {
		return http.StatusGatewayTimeout, "backend timed out"
	}
	return http.StatusBadGateway, "backend unavailable"
}

// Retry budget window: retries may be at most a share of the requests of the last
// budgetWindow seconds, but at least budgetFloor per second are always allowed.
const (
	budgetWindow = 10
	budgetFloor  = 3
)

// retryBudget counts requests and retries in one-second slots over a sliding window.
type retryBudget struct {
	now   func() time.Time
	mu    sync.Mutex
	slots [budgetWindow]budgetSlot
}

type budgetSlot struct {
	sec               int64
	requests, retries int64
}

func newRetryBudget(now func() time.Time) *retryBudget {
	if now == nil {
		now = time.Now
	}
	return &retryBudget{now: now}
}

// slot returns the current second's slot, reset if it held an older second. Callers hold mu.
func (b *retryBudget) slot(sec int64) *budgetSlot {
	s := &b.slots[sec%budgetWindow]
	if s.sec != sec {
		*s = budgetSlot{sec: sec}
	}
	return s
}

// request counts one incoming request.
func (b *retryBudget) request() {
	sec := b.now().Unix()
	b.mu.Lock()
	b.slot(sec).requests++
	b.mu.Unlock()
}

// allow reports whether one more retry fits the budget of ratio, and counts it if so.
func (b *retryBudget) allow(ratio float64) bool {
	sec := b.now().Unix()
	b.mu.Lock()
	defer b.mu.Unlock()
	var requests, retries int64
	for i := range b.slots {
		if s := &b.slots[i]; s.sec > sec-budgetWindow && s.sec <= sec {
			requests += s.requests
			retries += s.retries
		}
	}
	limit := max(ratio*float64(requests), budgetFloor*budgetWindow)
	if float64(retries) >= limit {
		return false
	}
	b.slot(sec).retries++
	return true
}
