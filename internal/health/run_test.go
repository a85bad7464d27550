package health

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeHealth answers health checks in memory (no network), so Run can be tested with
// testing/synctest's fake clock. It records when each backend was checked.
type fakeHealth struct {
	mu    sync.Mutex
	start time.Time
	ok    map[string]bool
	times map[string][]time.Duration
}

func (f *fakeHealth) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	host := r.URL.Host
	f.times[host] = append(f.times[host], time.Since(f.start))
	code, body := http.StatusOK, `{"status":"ok","version":"v1"}`
	if !f.ok[host] {
		code, body = http.StatusInternalServerError, `{"error":"x"}`
	}
	return &http.Response{StatusCode: code, Body: io.NopCloser(strings.NewReader(body)), Header: http.Header{}, Request: r}, nil
}

func (f *fakeHealth) set(host string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ok[host] = ok
}

func (f *fakeHealth) checks(host string) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.times[host]...)
}

func TestRunTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fh := &fakeHealth{start: time.Now(), ok: map[string]bool{"a:1": true, "b:1": true}, times: map[string][]time.Duration{}}
		pool := newFakePool()
		pool.add("a", "http://a:1")
		c, err := NewChecker(Config{Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 2},
			pool, pool, &http.Client{Transport: fh}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.jitter = func(n int64) int64 { return n / 2 } // no jitter
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()

		synctest.Wait()
		if !pool.IsHealthy("a") {
			t.Fatal("a not admitted by the first check at start")
		}
		time.Sleep(4 * time.Second) // steady: every 2 s
		synctest.Wait()
		fh.set("a:1", false) // from the next check on: failing
		time.Sleep(2 * time.Second)
		synctest.Wait() // t=6s: first failure -> changing -> next at 6.5s
		time.Sleep(500 * time.Millisecond)
		synctest.Wait() // t=6.5s: second failure -> down -> steady again
		if pool.IsHealthy("a") {
			t.Error("a still up after fall failures")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait() // t=8.5s
		fh.set("a:1", true)
		time.Sleep(2 * time.Second)
		synctest.Wait() // t=10.5s: first pass -> rising -> fast
		time.Sleep(500 * time.Millisecond)
		synctest.Wait() // t=11s: second pass -> up
		if !pool.IsHealthy("a") {
			t.Error("a not back up after rise passes")
		}

		want := []float64{0, 2, 4, 6, 6.5, 8.5, 10.5, 11} // seconds
		got := fh.checks("a:1")
		if len(got) != len(want) {
			t.Fatalf("checks at %v, want at %v seconds", got, want)
		}
		for i := range want {
			if w := time.Duration(want[i] * float64(time.Second)); got[i] != w {
				t.Errorf("check %d at %v, want %v", i, got[i], w)
			}
		}

		// A new target is picked up on Sync without waiting for the poll.
		pool.add("b", "http://b:1")
		c.Sync()
		synctest.Wait()
		if !pool.IsHealthy("b") {
			t.Error("b not checked after Sync")
		}
		// A removed target's loop stops.
		pool.remove("b")
		c.Sync()
		synctest.Wait()
		n := len(fh.checks("b:1"))
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := len(fh.checks("b:1")); got != n {
			t.Errorf("removed target checked %d more times", got-n)
		}
		cancel()
		<-done
	})
}

func TestPassive(t *testing.T) {
	pool := newFakePool()
	for _, n := range []string{"a", "b"} {
		pool.add(n, "http://x:1")
		pool.SetHealthy(n, true)
	}
	p := NewPassive(3, pool, nil)
	steps := []struct {
		name    string
		failed  bool
		healthy bool
	}{
		{"a", true, true},
		{"a", true, true},
		{"a", false, true}, // success resets the count
		{"a", true, true},
		{"a", true, true},
		{"a", true, false}, // 3 in a row
		{"b", true, true},
		{"b", true, true},
		{"b", true, true}, // the last healthy one stays
	}
	for i, s := range steps {
		p.Observe(s.name, s.failed)
		if got := pool.IsHealthy(s.name); got != s.healthy {
			t.Fatalf("step %d: %s healthy %v, want %v", i, s.name, got, s.healthy)
		}
	}
	if pool.ejects != 1 {
		t.Errorf("%d ejections, want 1", pool.ejects)
	}
	// Only the checker brings a backend back: successes on real traffic do not.
	p.Observe("a", false)
	if pool.IsHealthy("a") {
		t.Error("a passive success marked a backend up")
	}
	p.SetFall(1)
	pool.SetHealthy("a", true)
	p.Observe("a", true)
	if pool.IsHealthy("a") {
		t.Error("fall 1: one failure did not eject")
	}
	p.Forget("a")
}
