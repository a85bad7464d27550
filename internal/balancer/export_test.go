package balancer

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// Hooks for the tests of package balancer_test, which run the balancer behind the real
// front end (internal/frontend imports balancer, so they live outside the package).

// SetRetryBudgetClock gives the proxy an empty retry budget on another clock.
func (p *Proxy) SetRetryBudgetClock(now func() time.Time) { p.budget = newRetryBudget(now) }

// SpendRetryBudget takes one retry from the budget, as a retry would; false once it is spent.
func (p *Proxy) SpendRetryBudget(ratio float64) bool { return p.budget.allow(ratio) }

// SetObserver replaces the passive-health observer.
func (p *Proxy) SetObserver(o Observer) { p.observer = o }

// IdleConns returns how many idle connections lb keeps to the backend named name.
func (p *Pool) IdleConns(name string) int {
	b, err := p.lookup(name)
	if err != nil {
		return 0
	}
	return b.conns.idleCount()
}

// Helpers of helpers_internal_test.go, for balancer_test too.
var (
	Counter    = counter
	FindMetric = findMetric
	WaitFor    = waitFor
	DeadURL    = deadURL
)

// RawBackend starts a TCP server whose connections handle serves byte by byte, and returns
// its address.
func RawBackend(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) string {
	return newRawBackend(t, handle).addr
}
