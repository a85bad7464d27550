package e2e

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"outrigger/internal/fleet"
)

// TestBrokenMidBody: a download already streaming when its app server dies cannot be
// retried (bytes went out); the client sees the break, lb still logs one request line
// for it, and the next download succeeds from another server.
func TestBrokenMidBody(t *testing.T) {
	f := startFleet(t, fleet.Options{Apps: 2}, false)
	ctx := t.Context()
	u := newUser(t, f, f.Client(fleet.ClientOptions{Cookies: true}), "streamer")
	big := u.upload(t, "big.bin", 8<<20)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL()+"/api/files/"+big.id, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Request-ID", "broken-mid-body-1")
	resp, err := u.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download: status %d", resp.StatusCode)
	}
	// Read a little, so the response is streaming, then kill the server sending it
	// (it is blocked writing: this client does not read the rest yet).
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	sender := f.AppIndex(resp.Header.Get("X-Instance"))
	if sender < 0 {
		t.Fatalf("X-Instance %q is not an app of the fleet", resp.Header.Get("X-Instance"))
	}
	if err := f.Kill(sender); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(resp.Body)
	got := len(head) + len(rest)
	t.Logf("download from %s, killed mid-body: %d of %d bytes, then %v", f.AppNames()[sender], got, len(big.data), err)
	if err == nil || got >= len(big.data) {
		t.Errorf("download cut by kill -9: got %d of %d bytes and error %v, want an error before the end", got, len(big.data), err)
	}

	// lb logs that request too (DESIGN: one line per request).
	lbLine := lbRequestLine(t, f, "broken-mid-body-1")
	if lbLine == nil {
		t.Errorf("lb logged no request line for the download broken mid-body (request id broken-mid-body-1)")
	} else {
		t.Logf("lb: %s", lbLine.Text)
	}

	// The next download of the same file comes from the other server, whole.
	res := fleet.Load(ctx, fleet.LoadOptions{
		Workers:     1,
		Duration:    30 * time.Second,
		MaxRequests: 5,
		Request: func(ctx context.Context, _ int) error {
			_, err := download(ctx, u.c, u.base, big, nil)
			return err
		},
	})
	report(t, "downloads after the break", res)
	if res.Failures != 0 || res.Broken != 0 {
		t.Errorf("downloads after the break: got %d failed, %d broken, want 0, 0", res.Failures, res.Broken)
	}
}
