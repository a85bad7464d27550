package fleet

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LoadOptions configure Load. Load is always bounded: by Duration (default 60s), by
// MaxRequests when > 0, and by ctx.
type LoadOptions struct {
	Workers     int           // concurrent workers; default 4
	Duration    time.Duration // default 60s
	MaxRequests int           // 0: no bound but Duration
	Pause       time.Duration // each worker waits this long between its requests
	// Request sends one request for worker (0..Workers-1). nil means success; an
	// error wrapping ErrBroken is a response broken mid-body; any other error is a
	// failure. Errors of requests cut short by the end of the load are not counted.
	Request func(ctx context.Context, worker int) error
}

// Failure is one failed (or broken) request.
type Failure struct {
	At    time.Duration // since the load started, when it ended
	Began time.Duration // since the load started, when it was sent
	Err   string
}

// Result is what a load run saw.
type Result struct {
	Requests int            // requests counted (succeeded, failed or broken)
	Failures int            // failed requests
	Broken   int            // responses broken mid-body
	Reasons  map[string]int // failure and break messages (first 120 bytes) -> count
	Samples  []Failure      // the first failures and breaks, in order
	P50, P99 time.Duration  // whole request, body included
	Max      time.Duration
	// HeaderP99 and HeaderMax are the time to the response headers, measured by Do
	// (what lb's retries bound: a body that stalls after its headers cannot be retried).
	HeaderP99, HeaderMax time.Duration
	// Stalled counts successful responses whose body took longer than a second after
	// the headers (e.g. a download from a server frozen mid-body).
	Stalled int
	Elapsed time.Duration
}

// stallAfter is the body time past which a response counts as stalled.
const stallAfter = time.Second

// probe is where Do notes, for the load generator, when a request's headers arrived.
type probe struct {
	mu      sync.Mutex
	headers time.Time
}

type probeKey struct{}

// noteHeaders records that a response's headers arrived (a no-op outside a load).
func noteHeaders(ctx context.Context) {
	if p, ok := ctx.Value(probeKey{}).(*probe); ok {
		p.mu.Lock()
		p.headers = time.Now()
		p.mu.Unlock()
	}
}

// String is a one-line summary for t.Logf.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests in %v (%.0f/s), %d failed, %d broken mid-body, %d stalled mid-body, latency p50 %v p99 %v max %v (to headers: p99 %v max %v)",
		r.Requests, r.Elapsed.Round(time.Millisecond), float64(r.Requests)/r.Elapsed.Seconds(), r.Failures, r.Broken, r.Stalled,
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond),
		r.HeaderP99.Round(time.Microsecond), r.HeaderMax.Round(time.Microsecond))
	keys := make([]string, 0, len(r.Reasons))
	for k := range r.Reasons {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %dx %s", r.Reasons[k], k)
	}
	for _, s := range r.Samples {
		fmt.Fprintf(&b, "\n  at %v: %s", s.At.Round(time.Millisecond), s.Err)
	}
	return b.String()
}

// maxSamples is how many failures a Result keeps in full.
const maxSamples = 20

// LoadRun is a load running in the background; Stop ends it.
type LoadRun struct {
	count  atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}
	res    Result
}

// Load runs a bounded load to its end and returns what it saw.
func Load(ctx context.Context, o LoadOptions) Result {
	return StartLoad(ctx, o).Wait()
}

// StartLoad starts a bounded load in the background.
func StartLoad(ctx context.Context, o LoadOptions) *LoadRun {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Duration <= 0 {
		o.Duration = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	lr := &LoadRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(lr.done)
		lr.res = run(ctx, o, &lr.count)
		cancel()
	}()
	return lr
}

// Stop ends the load (requests in flight are cut and not counted) and returns its result.
func (lr *LoadRun) Stop() Result {
	lr.cancel()
	return lr.Wait()
}

// Wait waits for the load to end by itself and returns its result.
func (lr *LoadRun) Wait() Result {
	<-lr.done
	return lr.res
}

// Requests is how many requests were counted so far.
func (lr *LoadRun) Requests() int { return int(lr.count.Load()) }

// WaitRequests waits until n more requests than now were counted, or the load ended,
// or ctx ended; it reports whether the n requests were counted.
func (lr *LoadRun) WaitRequests(ctx context.Context, n int) bool {
	target := lr.Requests() + n
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for lr.Requests() < target {
		select {
		case <-tick.C:
		case <-lr.done:
			return lr.Requests() >= target
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func run(ctx context.Context, o LoadOptions, count *atomic.Int64) Result {
	start := time.Now()
	var (
		mu        sync.Mutex
		res       = Result{Reasons: map[string]int{}}
		latencies []time.Duration
		headers   []time.Duration
		issued    int
	)
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if o.MaxRequests > 0 && issued >= o.MaxRequests {
			return false
		}
		issued++
		return true
	}
	var wg sync.WaitGroup
	for w := range o.Workers {
		wg.Go(func() {
			for ctx.Err() == nil && take() {
				p := &probe{}
				t0 := time.Now()
				err := o.Request(context.WithValue(ctx, probeKey{}, p), w)
				end := time.Now()
				d := end.Sub(t0)
				p.mu.Lock()
				hd := d // no headers noted: count the whole request
				if !p.headers.IsZero() {
					hd = p.headers.Sub(t0)
				}
				p.mu.Unlock()
				if err != nil && ctx.Err() != nil {
					return // cut short by the end of the load
				}
				mu.Lock()
				res.Requests++
				count.Add(1)
				latencies = append(latencies, d)
				headers = append(headers, hd)
				if err == nil && d-hd > stallAfter {
					res.Stalled++
				}
				if err != nil {
					if errors.Is(err, ErrBroken) {
						res.Broken++
					} else {
						res.Failures++
					}
					msg := err.Error()
					res.Reasons[reason(msg)]++
					if len(res.Samples) < maxSamples {
						res.Samples = append(res.Samples, Failure{At: time.Since(start), Began: t0.Sub(start), Err: msg})
					}
				}
				mu.Unlock()
				if o.Pause > 0 {
					t := time.NewTimer(o.Pause)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
					}
				}
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		res.P50 = latencies[(n-1)*50/100]
		res.P99 = latencies[(n-1)*99/100]
		res.Max = latencies[n-1]
		slices.Sort(headers)
		res.HeaderP99 = headers[(n-1)*99/100]
		res.HeaderMax = headers[n-1]
	}
	return res
}

// uuidRE matches the ids in paths such as /api/files/{id}.
var uuidRE = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)

// reason groups failure messages: request ids, byte counts and file ids vary, so it
// drops parenthesised parts, replaces UUIDs by {id} and cuts the rest.
func reason(msg string) string {
	msg = uuidRE.ReplaceAllString(msg, "{id}")
	var b strings.Builder
	depth := 0
	for _, r := range msg {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	s := strings.Join(strings.Fields(b.String()), " ")
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}
