// Package lbtest holds test helpers shared by the load balancer's packages
// (cmd/lb, admin, certs, health): a goroutine-safe buffer, bounded polling,
// self-signed certificates, backends with a chosen health answer, a server that
// accepts and never answers, and an
// in-process ACME CA (Pebble) with the DNS stub it needs. Only tests import it.
package lbtest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer that a logger or a program may write while a
// test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Count returns how many times substr occurs in what was written.
func (s *SyncBuffer) Count(substr string) int { return strings.Count(s.String(), substr) }

// HasLine reports whether one line contains every fragment.
func (s *SyncBuffer) HasLine(fragments ...string) bool {
	for _, line := range strings.Split(s.String(), "\n") {
		ok := line != ""
		for _, f := range fragments {
			ok = ok && strings.Contains(line, f)
		}
		if ok {
			return true
		}
	}
	return false
}

// WaitFor polls cond every 10 ms until it holds, and fails the test if it
// does not within timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
