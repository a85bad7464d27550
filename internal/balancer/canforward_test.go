package balancer

import (
	"fmt"
	"testing"
	"time"
)

// TestCanForward checks the readiness rule against the proxy's fail-open rule: a healthy
// active backend, else an active one that answers its health checks.
func TestCanForward(t *testing.T) {
	type be struct {
		healthy, answered, draining bool
	}
	tests := []struct {
		name         string
		backends     []be
		ok, failOpen bool
	}{
		{"no backends", nil, false, false},
		{"one healthy", []be{{healthy: true, answered: true}}, true, false},
		{"healthy among refusing", []be{{}, {healthy: true, answered: true}, {}}, true, false},
		{"unhealthy but answering: fail-open", []be{{answered: true}, {}}, true, true},
		{"every one refuses or times out", []be{{}, {}}, false, false},
		{"every one drained", []be{{healthy: true, answered: true, draining: true}, {healthy: true, answered: true, draining: true}}, false, false},
		{"drained healthy, active refusing", []be{{healthy: true, answered: true, draining: true}, {}}, false, false},
		{"drained healthy, active answering", []be{{healthy: true, answered: true, draining: true}, {answered: true}}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newTestPool(t)
			for i, b := range tt.backends {
				name := fmt.Sprintf("b%d", i)
				if _, err := p.Add(name, fmt.Sprintf("http://127.0.0.1:%d", 1000+i)); err != nil {
					t.Fatal(err)
				}
				p.ReportCheck(name, b.healthy, b.answered, 0, time.Now(), "", "")
				p.SetHealthy(name, b.healthy)
				if b.draining {
					if _, err := p.Drain(name); err != nil {
						t.Fatal(err)
					}
				}
			}
			ok, failOpen := p.CanForward()
			if ok != tt.ok || failOpen != tt.failOpen {
				t.Errorf("CanForward() = %t, %t; want %t, %t", ok, failOpen, tt.ok, tt.failOpen)
			}
		})
	}
}
