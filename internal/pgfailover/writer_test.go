package pgfailover

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// writer inserts a row every interval through the formation's multi-host URI, as an
// application would, on one connection that it reopens after any error. It records which
// ids were acknowledged and when each write that succeeded had started and ended.
type writer struct {
	uri      string
	interval time.Duration

	mu    sync.Mutex
	acked []int64
	oks   []span // successful writes, in order
	errs  int
	last  error
	wake  chan struct{} // closed and replaced after each success
}

type span struct{ start, end time.Time }

func startWriter(t *testing.T, uri string) *writer {
	t.Helper()
	w := &writer{uri: uri, interval: 50 * time.Millisecond, wake: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

func (w *writer) run(ctx context.Context) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for id := int64(1); ctx.Err() == nil; id++ {
		start := time.Now()
		err := func() error {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if conn == nil {
				c, err := connectApp(cctx, w.uri)
				if err != nil {
					return err
				}
				conn = c
			}
			_, err := conn.Exec(cctx, "INSERT INTO writes (id) VALUES ($1)", id)
			return err
		}()
		w.mu.Lock()
		if err == nil {
			w.acked = append(w.acked, id)
			w.oks = append(w.oks, span{start, time.Now()})
			close(w.wake)
			w.wake = make(chan struct{})
		} else {
			w.errs++
			w.last = err
		}
		w.mu.Unlock()
		if err != nil && conn != nil {
			conn.Close(context.Background())
			conn = nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(w.interval):
		}
	}
}

// recoveredAfter waits for the first write that started after t0 and succeeded, and
// returns when it ended: the end of the outage that began at t0, as this client saw it.
func (w *writer) recoveredAfter(ctx context.Context, t0 time.Time) (time.Time, error) {
	for {
		w.mu.Lock()
		i := sort.Search(len(w.oks), func(i int) bool { return w.oks[i].start.After(t0) })
		if i < len(w.oks) {
			end := w.oks[i].end
			w.mu.Unlock()
			return end, nil
		}
		wake, last := w.wake, w.last
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no successful write since %v: %w (last error: %v)", t0.Format("15:04:05.000"), ctx.Err(), last)
		case <-wake:
		}
	}
}

// maxGap is the longest time, between from and to, in which no write succeeded: from the
// end of one successful write to the end of the next (or to "to", if none came).
func (w *writer) maxGap(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var gap time.Duration
	prev := time.Time{}
	for _, ok := range w.oks {
		if !prev.IsZero() && ok.end.After(from) && prev.Before(to) {
			gap = max(gap, ok.end.Sub(prev))
		}
		prev = ok.end
	}
	if !prev.IsZero() && prev.Before(to) {
		gap = max(gap, to.Sub(prev))
	}
	return gap
}

// ackedIDs is a copy of the acknowledged ids.
func (w *writer) ackedIDs() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acked)
}

// checkNoneLost fails the test unless every write acknowledged so far is on the primary.
func checkNoneLost(t *testing.T, ctx context.Context, f *Formation, w *writer) {
	t.Helper()
	acked := w.ackedIDs()
	p, err := f.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := connect(ctx, p, f.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var missing []int64
	rows, err := conn.Query(ctx, "SELECT a.id FROM unnest($1::bigint[]) AS a(id) LEFT JOIN writes USING (id) WHERE writes.id IS NULL", acked)
	if err == nil {
		missing, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	if err != nil {
		t.Fatalf("check acknowledged writes on %s: %v", p.Name(), err)
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged writes are not on the primary %s: %v", len(missing), len(acked), p.Name(), missing)
	}
	t.Logf("all %d acknowledged writes are on the primary %s", len(acked), p.Name())
}

// stats summarises durations: median and max.
type stats []time.Duration

func (s stats) String() string {
	if len(s) == 0 {
		return "no runs"
	}
	c := slices.Clone(s)
	slices.Sort(c)
	med := c[len(c)/2]
	if len(c)%2 == 0 {
		med = (c[len(c)/2-1] + c[len(c)/2]) / 2
	}
	return fmt.Sprintf("median %.2fs, max %.2fs over %d run(s) %v", med.Seconds(), c[len(c)-1].Seconds(), len(c), roundAll(s))
}

func roundAll(s stats) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, d := range s {
		out[i] = d.Round(10 * time.Millisecond)
	}
	return out
}
