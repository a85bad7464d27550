package balancer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
)

// Policy chooses one backend among candidates, which are never empty: the proxy passes only
// backends that may take the request and that it has not tried for this request yet.
// Implementations are safe for concurrent use.
type Policy interface {
	Pick(candidates []*Backend) *Backend
}

// Policy names accepted by NewPolicy (the config's policy key).
const (
	PolicyRoundRobin = "round_robin"
	PolicyLeastConn  = "least_conn"
	PolicyP2C        = "p2c"
)

// NewPolicy returns the policy called name. rnd, if given, is the random source of p2c:
// it returns a number in [0, n); by default math/rand/v2.IntN.
func NewPolicy(name string, rnd ...func(n int) int) (Policy, error) {
	r := rand.IntN
	if len(rnd) > 0 && rnd[0] != nil {
		r = rnd[0]
	}
	switch name {
	case PolicyRoundRobin:
		return &RoundRobin{}, nil
	case PolicyLeastConn:
		return &LeastConn{}, nil
	case PolicyP2C:
		return &P2C{rnd: r}, nil
	}
	return nil, fmt.Errorf("unknown policy %q (want %s, %s or %s)", name, PolicyRoundRobin, PolicyLeastConn, PolicyP2C)
}

// RoundRobin takes candidates in turn.
type RoundRobin struct{ next atomic.Uint64 }

// Pick returns the next candidate in rotation.
func (p *RoundRobin) Pick(c []*Backend) *Backend {
	return c[(p.next.Add(1)-1)%uint64(len(c))]
}

// LeastConn takes the candidate with the fewest requests in flight; ties go round-robin.
type LeastConn struct{ next atomic.Uint64 }

// Pick returns a candidate with the fewest requests in flight. The counts are read once:
// other requests change them meanwhile, and a second read could find no candidate at the
// minimum of the first.
func (p *LeastConn) Pick(c []*Backend) *Backend {
	var buf [64]int64 // on the stack for up to 64 candidates
	counts := buf[:0]
	least, ties := int64(math.MaxInt64), 0
	for _, b := range c {
		n := b.InFlight()
		counts = append(counts, n)
		switch {
		case n < least:
			least, ties = n, 1
		case n == least:
			ties++
		}
	}
	k := (p.next.Add(1) - 1) % uint64(ties)
	for i, n := range counts {
		if n == least {
			if k == 0 {
				return c[i]
			}
			k--
		}
	}
	return c[0] // not reached: ties counted the same snapshot
}

// P2C is "power of two choices": of two random candidates it takes the one with the lower
// cost, (in-flight + 1) x response latency EWMA; in-flight alone while either lacks a sample.
type P2C struct{ rnd func(n int) int }

// Pick returns the cheaper of two distinct random candidates.
func (p *P2C) Pick(c []*Backend) *Backend {
	if len(c) == 1 {
		return c[0]
	}
	i := p.rnd(len(c))
	j := p.rnd(len(c) - 1)
	if j >= i {
		j++
	}
	a, b := c[i], c[j]
	if p2cCost(a, b) <= p2cCost(b, a) {
		return a
	}
	return b
}

// p2cCost is b's cost, comparable with other's.
func p2cCost(b, other *Backend) float64 {
	n := float64(b.InFlight() + 1)
	lb, lo := b.Latency(), other.Latency()
	if lb == 0 || lo == 0 {
		return n
	}
	return n * float64(lb)
}
