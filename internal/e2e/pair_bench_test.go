package e2e

import (
	"slices"
	"testing"
	"time"

	"outrigger/internal/fleet"
	"outrigger/internal/labfleet"
)

// BenchmarkLabTakeover measures, one fault of the lb holding the virtual IP per iteration
// and under load from the client host (6 users, half HTTP/1.1, half HTTP/2), how long the
// other lb takes to hold the address, how long new connections are refused meanwhile, and
// how many requests fail: refused ones apart from the rest (in flight on the dead lb).
// Figures in ms and requests per fault, median and max; run with -benchtime 5x:
//
//	go test -run '^$' -bench LabTakeover -benchtime 5x ./internal/e2e/
func BenchmarkLabTakeover(b *testing.B) {
	for _, fault := range []string{"crash", "kill"} {
		b.Run(fault, func(b *testing.B) {
			f := labfleet.ForTest(b, labfleet.Options{LB: bin.lb, App: bin.appV1, Apps: 2})
			users := labUsers(b, f, "bench", 6, 16<<10)
			var moves, refusedFor []time.Duration
			var refused, other []float64
			for b.Loop() {
				b.StopTimer()
				h, err := f.WaitHolder(b.Context(), 10*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				next := f.Other(h)
				lr := fleet.StartLoad(b.Context(), userLoad(users, 60*time.Second))
				lr.WaitRequests(b.Context(), 50)
				stop := make(chan struct{})
				window := refusalWindow(f, stop)
				time.Sleep(50 * time.Millisecond)
				b.StartTimer()
				start := time.Now()
				if fault == "kill" {
					err = h.Proc.Kill()
				} else {
					err = h.Host.Crash(b.Context())
				}
				if err != nil {
					b.Fatal(err)
				}
				for {
					if cur, err := f.Holder(); err == nil && cur == next {
						break
					}
					if time.Since(start) > 10*time.Second {
						b.Fatalf("the address did not move to %s", next.Name)
					}
					time.Sleep(5 * time.Millisecond)
				}
				moves = append(moves, time.Since(start))
				b.StopTimer()
				time.Sleep(4 * time.Second) // requests the dead lb held end (see TestLabPair)
				close(stop)
				res := lr.Stop()
				refusedFor = append(refusedFor, <-window)
				r, o := failures(res)
				refused, other = append(refused, float64(r)), append(other, float64(o))
				b.Logf("%s of %s: %v", fault, h.Name, res)
				if h.Host.Crashed() {
					if err := h.Host.Boot(b.Context()); err != nil {
						b.Fatal(err)
					}
					if err := f.StartKeepalived(b.Context(), h); err != nil {
						b.Fatal(err)
					}
				}
				if err := f.StartLB(b.Context(), h); err != nil {
					b.Fatal(err)
				}
				time.Sleep(3 * time.Second) // its check passes rise (2) times
				b.StartTimer()
			}
			reportMS(b, "move", moves)
			reportMS(b, "refused", refusedFor)
			reportN(b, "refused-requests", refused)
			reportN(b, "failed-requests", other)
		})
	}
}

// reportMS reports the median and the max of ds in milliseconds.
func reportMS(b *testing.B, what string, ds []time.Duration) {
	var ms []float64
	for _, d := range ds {
		ms = append(ms, float64(d.Microseconds())/1000)
	}
	reportN(b, what+"-ms", ms)
}

// reportN reports the median and the max of xs.
func reportN(b *testing.B, what string, xs []float64) {
	if len(xs) == 0 {
		return
	}
	slices.Sort(xs)
	b.ReportMetric(xs[len(xs)/2], what+"-median")
	b.ReportMetric(xs[len(xs)-1], what+"-max")
	b.Logf("%s: %v", what, xs)
}
