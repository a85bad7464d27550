package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"sync"
	"testing"
	"time"

	"outrigger/internal/fleet"
	"outrigger/internal/labfleet"
)

// The lab fleet's settings the bounds below come from (labfleet.LBConfigDefaults).
const (
	labDialTimeout    = time.Second
	labPerTryTimeout  = 10 * time.Second
	labHealthInterval = 500 * time.Millisecond
	labHealthTimeout  = 400 * time.Millisecond
	labFall           = 2
)

// blackholeApp blackholes app-2's host for 4 s under load, with uploads going on beside:
// zero failed idempotent requests, none slower than dial_timeout + per_try_timeout + 1 s,
// app-2 down on both lbs within fall checks and back after healing, and no upload stored
// twice.
//
// Why 4 s: a request in flight on app-2 waits with it, and app-2's database calls are as
// silent as its host, so app-2 answers 503 (Retry-After) once DB_RETRY_TIMEOUT (8 s) has
// passed unless its database answers again in time; lb passes an app's answer on and
// retries only a dial error, a reset or a per-try timeout (DESIGN). Blackholed for 6 s,
// app-2 once (1 of 2,320 requests, 1 run of 4) could not finish a call in the 2 s left
// and answered 503 after healing; a blackhole longer than per_try_timeout (10 s) is
// retried elsewhere by lb. 4 s leaves app-2 half its budget.
func blackholeApp(t *testing.T, f *labfleet.Fleet, users []*user) {
	ctx := t.Context()
	app := f.Apps[1]
	lr := fleet.StartLoad(ctx, userLoad(users[1:], 90*time.Second))
	if !lr.WaitRequests(ctx, 50) {
		t.Fatalf("load before the blackhole: %v", lr.Stop())
	}
	up := startUploads(ctx, users[0], 3, 256<<10)
	time.Sleep(500 * time.Millisecond)
	if err := app.Host.Blackhole(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, lb := range f.LBs {
		wg.Go(func() {
			waitBackend(t, lb, app.Name, false, 10*time.Second)
			d := time.Since(start)
			t.Logf("blackhole: %s marked %s down after %v", lb.Name, app.Name, d.Round(time.Millisecond))
			if limit := labFall*labHealthInterval + labHealthTimeout + 2*time.Second; d > limit {
				t.Errorf("%s marked %s down after %v, want within fall (%d) checks: %v with a margin", lb.Name, app.Name, d, labFall, limit)
			}
		})
	}
	wg.Wait()
	time.Sleep(4*time.Second - time.Since(start))
	if err := app.Host.Unblackhole(ctx); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	for _, lb := range f.LBs {
		waitBackend(t, lb, app.Name, true, 20*time.Second)
	}
	t.Logf("blackhole: %s healthy on both lbs %v after healing", app.Name, time.Since(healed).Round(time.Millisecond))
	// Requests held by the blackhole finish within per_try_timeout of it.
	time.Sleep(labPerTryTimeout - time.Since(healed) + time.Second)
	res := lr.Stop()
	uploads, upFailed := up.stop()
	report(t, "blackhole of "+app.Name, res)
	t.Logf("blackhole: %d uploads, %d failed (not idempotent: lb does not retry them once sent), %d held by the silent host until it came back",
		uploads, upFailed, up.held)
	if res.Failures != 0 {
		t.Errorf("blackhole: %d failed idempotent requests, want 0", res.Failures)
	}
	if limit := labDialTimeout + labPerTryTimeout + time.Second; res.Max > limit {
		t.Errorf("blackhole: slowest request took %v, want at most dial_timeout + per_try_timeout + 1s = %v", res.Max, limit)
	}
	// An upload the app on the blackholed host was writing may still commit after the
	// heal: wait past DB_RETRY_TIMEOUT, then every name must be listed at most once.
	time.Sleep(2 * time.Second)
	var list []struct{ ID, Name string }
	if _, err := doJSON(ctx, users[0].c, http.MethodGet, f.URL+"/api/files", nil, &list, http.StatusOK); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, fl := range list {
		seen[fl.Name]++
		if seen[fl.Name] == 2 {
			t.Errorf("blackhole: upload %s stored twice", fl.Name)
		}
	}
}

// waitBackend waits until lb's admin API says backend name is healthy (or not).
func waitBackend(t *testing.T, lb *labfleet.LB, name string, healthy bool, limit time.Duration) {
	t.Helper()
	waitFor(t, limit, fmt.Sprintf("%s: %s healthy=%v", lb.Name, name, healthy), func() bool {
		b, err := lb.Admin.Backend(t.Context(), name)
		return err == nil && b.Healthy == healthy
	})
}

// uploads is a background loop of uploads by workers of one user, each file named once.
type uploads struct {
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	mu            sync.Mutex
	count, failed int
	held          int // uploads that took over 2 s
	firstErr      error
}

func startUploads(ctx context.Context, u *user, workers, size int) *uploads {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	up := &uploads{cancel: cancel}
	for w := range workers {
		up.wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				began := time.Now()
				err := tryUpload(ctx, u, fmt.Sprintf("up-%d-%d.bin", w, i), size)
				if ctx.Err() != nil {
					return
				}
				up.mu.Lock()
				up.count++
				if time.Since(began) > 2*time.Second {
					up.held++ // in flight to a host that fell silent
				}
				if err != nil {
					up.failed++
					if up.firstErr == nil {
						up.firstErr = err
					}
				}
				up.mu.Unlock()
			}
		})
	}
	return up
}

func (up *uploads) stop() (count, failed int) {
	up.cancel()
	up.wg.Wait()
	return up.count, up.failed
}

// tryUpload posts size random bytes as file name.
func tryUpload(ctx context.Context, u *user, name string, size int) error {
	data := make([]byte, size)
	_, _ = rand.Read(data)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		return err
	}
	_, _ = fw.Write(data)
	if err := mw.Close(); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.base+"/api/files", &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	b, _, err := fleet.Do(u.c, req, http.StatusCreated)
	if err != nil {
		return err
	}
	var got struct{ ID string }
	return json.Unmarshal(b, &got)
}

// partitionLB cuts the holder of the address off from every app (not from the client,
// nor from the other lb).
//
// DESIGN's rule decides what happens: the holder's health checks fail, it marks every
// backend down, and its /readyz answers 503 (no backend takes connections), so its `lb
// ready` check lowers its VRRP priority and the other lb, whose check passes, takes the
// address. That is right: the other lb reaches the apps, so moving is what serves the
// clients; fail-open (an lb trying backends it marked down) is for when no lb can reach
// them, and then neither check passes, neither outranks the other, and the holder keeps
// the address. Requests in flight on the cut-off lb when the partition starts, and those
// sent to it before the address moves, may fail (counted); none sent after may. While no
// backend is healthy the cut-off lb closes each connection after its answer
// (Connection: close, GOAWAY), so clients do not stay on it through connections the
// other lb hands back to it.
func partitionLB(t *testing.T, f *labfleet.Fleet, users []*user) {
	ctx := t.Context()
	h, err := f.WaitHolder(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	next := f.Other(h)
	loadStart := time.Now()
	lr := fleet.StartLoad(ctx, userLoad(users, 60*time.Second))
	if !lr.WaitRequests(ctx, 50) {
		t.Fatalf("load before the partition: %v", lr.Stop())
	}
	cut := time.Since(loadStart)
	for _, a := range f.Apps {
		if err := f.Lab.Partition(ctx, h.Host, a.Host); err != nil {
			t.Fatal(err)
		}
	}
	moved := waitMove(t, f, next, 15*time.Second)
	t.Logf("partition: the address moved from %s to %s after %v", h.Name, next.Name, moved.Round(time.Millisecond))
	// Requests the cut-off lb holds end within per_try_timeout and its retries' dial
	// timeouts; new ones after the move reach the other lb.
	time.Sleep(labPerTryTimeout + 3*labDialTimeout)
	lr.WaitRequests(ctx, 300)
	res := lr.Stop()
	report(t, "partition", res)
	var after int
	for _, fl := range res.Samples {
		if fl.Began > cut+moved {
			after++
		}
	}
	t.Logf("partition: %d failed, %d of them sent after the address moved", res.Failures, after)
	if after != 0 || res.Failures > len(res.Samples) {
		t.Errorf("partition: %d failed requests sent after the address moved (of the first %d failures of %d), want 0", after, len(res.Samples), res.Failures)
	}
	for _, a := range f.Apps {
		if err := f.Lab.Heal(ctx, h.Host, a.Host); err != nil {
			t.Fatal(err)
		}
	}
	recovered(t, f, h)
	stays(t, f, next, time.Second)
}
