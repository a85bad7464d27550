package e2e

import (
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"outrigger/internal/fleet"
)

// TestSessionsAndFilesAcrossServers is DESIGN's acceptance bar 4: a user logged in
// through one app server stays logged in whichever server answers, also after the
// one that logged them in is gone; a file uploaded through one downloads through any
// other, and no app server keeps it on its disk.
func TestSessionsAndFilesAcrossServers(t *testing.T) {
	f := startFleet(t, fleet.Options{Apps: 3}, false)
	ctx := t.Context()
	alice := newUser(t, f, f.Client(fleet.ClientOptions{Cookies: true}), "alice")
	bob := newUser(t, f, f.Client(fleet.ClientOptions{Cookies: true}), "bob")
	doc := alice.upload(t, "report.bin", 700<<10) // three 256 KiB chunks
	t.Logf("alice logged in through %s", alice.loginInstance)

	// Through lb, every instance answers for alice.
	seen := map[string]bool{}
	waitFor(t, 10*time.Second, "alice answered by all three instances through lb", func() bool {
		inst, _, err := alice.me(ctx)
		if err != nil {
			t.Fatalf("through lb: %v", err)
		}
		seen[inst] = true
		return len(seen) == 3
	})

	// On each app server directly (bypassing lb), with alice's session cookie: the same
	// user and the same bytes; bob's cookie gets her file as 404.
	lbURL, _ := url.Parse(f.URL())
	cookieHeader := func(u *user) http.Header {
		h := http.Header{}
		for _, c := range u.c.Jar.Cookies(lbURL) {
			h.Add("Cookie", c.Name+"="+c.Value)
		}
		return h
	}
	direct := &http.Client{Timeout: 30 * time.Second}
	checkDirect := func(i int, fl file) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.AppURL(i)+"/api/me", nil)
		req.Header = cookieHeader(alice)
		if _, resp, err := fleet.Do(direct, req, http.StatusOK); err != nil {
			t.Errorf("%s directly: %v", f.AppNames()[i], err)
		} else if got := resp.Header.Get("X-Instance"); got != f.AppNames()[i] {
			t.Errorf("%s directly: X-Instance %q", f.AppNames()[i], got)
		}
		if _, err := download(ctx, direct, f.AppURL(i), fl, cookieHeader(alice)); err != nil {
			t.Errorf("download from %s directly: %v", f.AppNames()[i], err)
		}
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, f.AppURL(i)+"/api/files/"+fl.id, nil)
		req.Header = cookieHeader(bob)
		if _, _, err := fleet.Do(direct, req, http.StatusNotFound); err != nil {
			t.Errorf("bob downloading alice's file from %s: %v", f.AppNames()[i], err)
		}
	}
	for i := range f.Apps() {
		checkDirect(i, doc)
	}

	// No app server keeps the upload on its disk (working directory and TMPDIR).
	for _, p := range f.Apps() {
		_ = filepath.WalkDir(p.Dir(), func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				t.Errorf("%s left a file on its disk: %s", p.Name(), path)
			}
			return nil
		})
	}

	// The server that logged alice in dies: she stays logged in, her file downloads,
	// and a new upload works and downloads from the others.
	victim := f.AppIndex(alice.loginInstance)
	if victim < 0 {
		t.Fatalf("login answered by %q, not one of %v", alice.loginInstance, f.AppNames())
	}
	if err := f.Kill(victim); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		inst, _, err := alice.me(ctx)
		if err != nil {
			t.Fatalf("after kill -9 of %s: %v", alice.loginInstance, err)
		}
		if inst == alice.loginInstance {
			t.Fatalf("the killed %s answered", inst)
		}
		if _, err := download(ctx, alice.c, alice.base, doc, nil); err != nil {
			t.Fatalf("download after kill -9 of %s: %v", alice.loginInstance, err)
		}
	}
	res := fleet.Load(ctx, func() fleet.LoadOptions {
		o := userLoad([]*user{alice, alice}, 30*time.Second)
		o.MaxRequests = 200
		return o
	}())
	report(t, "alice after kill -9 of the server that logged her in", res)
	if res.Failures != 0 || res.Requests != 200 {
		t.Errorf("after kill -9 of %s: got %d of %d requests failed, want 0 of 200", alice.loginInstance, res.Failures, res.Requests)
	}
	second := alice.upload(t, "second.bin", 300<<10)
	for i := range f.Apps() {
		if i != victim {
			checkDirect(i, second)
		}
	}
}
