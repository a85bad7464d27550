package h1

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestDateCache(t *testing.T) {
	var d DateCache
	t0 := time.Date(2026, time.March, 7, 13, 4, 5, 100, time.FixedZone("X", 3600))
	want := "Sat, 07 Mar 2026 12:04:05 GMT"
	if got := string(d.Append([]byte("Date: "), t0)); got != "Date: "+want {
		t.Fatalf("got %q, want %q", got, "Date: "+want)
	}
	if got := string(d.Append(nil, t0.Add(999*time.Millisecond))); got != want {
		t.Errorf("same second: got %q, want %q", got, want)
	}
	if got, want := string(d.Append(nil, t0.Add(time.Second))), "Sat, 07 Mar 2026 12:04:06 GMT"; got != want {
		t.Errorf("next second: got %q, want %q", got, want)
	}
	if got := string(d.Append(nil, t0)); got != want {
		t.Errorf("back a second: got %q, want %q", got, want)
	}
	far := time.Date(12026, time.January, 1, 0, 0, 0, 0, time.UTC)
	if got, want := string(d.Append(nil, far)), far.Format(http.TimeFormat); got != want {
		t.Errorf("year 12026: got %q, want %q", got, want)
	}
}

// TestDateCacheConcurrent is for the race detector.
func TestDateCacheConcurrent(t *testing.T) {
	var d DateCache
	start := time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var buf []byte
			for i := range 1000 {
				now := start.Add(time.Duration(i*g) * 10 * time.Millisecond)
				buf = d.Append(buf[:0], now)
				if got, want := string(buf), now.UTC().Format(http.TimeFormat); got != want {
					t.Errorf("got %q, want %q", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
