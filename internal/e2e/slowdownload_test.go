package e2e

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"outrigger/internal/fleet"
)

// TestSlowDownloadNotCut: per_try_timeout bounds the wait for a backend's response
// headers, never the body (DESIGN, Timeouts). A client that reads a large file slowly
// keeps lb copying the body for about 30 s, 30 times per_try_timeout (issue 3's 30 s
// download); the download must arrive whole, from one backend, with no retry.
func TestSlowDownloadNotCut(t *testing.T) {
	const (
		size     = 20 << 20               // larger than the socket buffers on the way, so lb keeps copying
		step     = 128 << 10              // read this much ...
		interval = 190 * time.Millisecond // ... this often: ~0.66 MiB/s, about 30 s in all
	)
	f := startFleet(t, fleet.Options{Apps: 2}, false)
	u := newUser(t, f, f.Client(fleet.ClientOptions{Cookies: true}), "slowreader")
	big := u.upload(t, "slow.bin", size)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.URL()+"/api/files/"+big.id, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Request-ID", "slow-download-1")
	start := time.Now()
	resp, err := u.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download: status %d", resp.StatusCode)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var got bytes.Buffer
	for {
		_, err := io.CopyN(&got, resp.Body, step)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("download cut after %d of %d bytes and %v: %v", got.Len(), size, time.Since(start).Round(time.Millisecond), err)
		}
		<-tick.C
	}
	took := time.Since(start)
	t.Logf("slow download: %d bytes in %v (per_try_timeout 1s)", got.Len(), took.Round(time.Millisecond))
	if !bytes.Equal(got.Bytes(), big.data) {
		t.Fatalf("slow download: got %d bytes differing from the %d uploaded", got.Len(), size)
	}
	if took < 20*time.Second {
		t.Errorf("slow download took %v: too fast to show anything about per_try_timeout (1s)", took)
	}

	// lb's line for it: one attempt, status 200.
	line := lbRequestLine(t, f, "slow-download-1")
	if line == nil {
		t.Fatalf("lb logged no line for request slow-download-1")
	}
	if line.Fields["status"] != 200.0 || line.Fields["attempts"] != 1.0 {
		t.Errorf("lb line %s: want status 200 and attempts 1", line.Text)
	}
}
