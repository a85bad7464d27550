package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"outrigger/internal/fleet"
	"outrigger/internal/pgtest"
)

// perTry is lb's per_try_timeout in these tests.
const perTry = time.Second

// startFleet starts lb and the app servers (v1) for t, on a fresh database from
// pgtest unless ownCluster, in which case the fleet starts its own PostgreSQL (for
// tests that restart it). Logs are printed only if t fails.
func startFleet(t *testing.T, o fleet.Options, ownCluster bool) *fleet.Fleet {
	t.Helper()
	o.AppBinary, o.LBBinary = bin.appV1, bin.lb
	o.AppVersions = map[string]string{"v1": bin.appV1, "v2": bin.appV2}
	if !ownCluster {
		o.DatabaseURL = pgtest.DSN(t)
	}
	if o.LB.PerTryTimeout == 0 {
		o.LB.PerTryTimeout = perTry
	}
	o.Dir = t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	f, err := fleet.Start(ctx, o)
	if err != nil {
		dumpDir(t, o.Dir)
		t.Fatalf("start fleet: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			var buf bytes.Buffer
			f.DumpLogs(&buf, 150)
			t.Log("\n" + buf.String())
		}
		if err := f.Close(); err != nil {
			t.Errorf("stop fleet: %v", err)
		}
	})
	return f
}

// dumpDir logs the tails of the *.log files in dir (a fleet that failed to start).
func dumpDir(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		t.Logf("=== %s\n%s", filepath.Base(l), strings.Join(lines, "\n"))
	}
}

// waitFor polls cond every 20ms until it holds, and fails t if timeout passes first.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(t, timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// poll calls cond every 20ms until it holds (true) or timeout passes (false).
func poll(t *testing.T, timeout time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			return false
		}
	}
	return true
}

// user is an account logged in through lb, with the files it uploaded.
type user struct {
	name, password string
	base           string // lb's URL
	c              *http.Client
	files          []file
	loginInstance  string // X-Instance of the login response
}

type file struct {
	id, name string
	data     []byte
}

// doJSON sends a JSON body (nil: none) and decodes a JSON answer into out (nil: ignore).
func doJSON(ctx context.Context, c *http.Client, method, url string, in, out any, want int) (*http.Response, error) {
	var body *bytes.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	} else {
		body = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	b, resp, err := fleet.Do(c, req, want)
	if err != nil {
		return resp, err
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp, fmt.Errorf("%s %s: decode %q: %w", method, req.URL.Path, b, err)
		}
	}
	return resp, nil
}

// newUser signs up and logs in a new user through lb with client c (which must keep cookies).
func newUser(t *testing.T, f *fleet.Fleet, c *http.Client, name string) *user {
	t.Helper()
	return newUserAt(t, f.URL(), c, name)
}

// newUserAt is newUser through the lb at base.
func newUserAt(t testing.TB, base string, c *http.Client, name string) *user {
	t.Helper()
	ctx := t.Context()
	u := &user{name: name, password: "correct horse " + name, base: base, c: c}
	cred := map[string]string{"username": u.name, "password": u.password}
	if _, err := doJSON(ctx, c, http.MethodPost, u.base+"/api/signup", cred, nil, http.StatusCreated); err != nil {
		t.Fatalf("signup %s: %v", name, err)
	}
	resp, err := doJSON(ctx, c, http.MethodPost, u.base+"/api/login", cred, nil, http.StatusOK)
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	u.loginInstance = resp.Header.Get("X-Instance")
	return u
}

// me is GET /api/me; it checks the username and returns the answering instance and version.
func (u *user) me(ctx context.Context) (instance, version string, err error) {
	var m struct{ Username, Instance, Version string }
	resp, err := doJSON(ctx, u.c, http.MethodGet, u.base+"/api/me", nil, &m, http.StatusOK)
	if err != nil {
		return "", "", err
	}
	if m.Username != u.name {
		return "", "", fmt.Errorf("GET /api/me (request %s): username %q, want %q", resp.Header.Get("X-Request-ID"), m.Username, u.name)
	}
	if h := resp.Header.Get("X-Instance"); h != m.Instance {
		return "", "", fmt.Errorf("GET /api/me: X-Instance %q but body instance %q", h, m.Instance)
	}
	return m.Instance, m.Version, nil
}

// upload posts size random bytes as a file through lb.
func (u *user) upload(t testing.TB, name string, size int) file {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(data)
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u.base+"/api/files", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	b, _, err := fleet.Do(u.c, req, http.StatusCreated)
	if err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
	var got struct {
		ID, Name, Sha256 string
		Size             int
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("upload %s: decode %q: %v", name, b, err)
	}
	sum := sha256.Sum256(data)
	if got.Size != size || got.Sha256 != hex.EncodeToString(sum[:]) || got.ID == "" {
		t.Fatalf("upload %s: got %+v, want size %d sha256 %x", name, got, size, sum)
	}
	f := file{id: got.ID, name: name, data: data}
	u.files = append(u.files, f)
	return f
}

// download fetches a file from base (lb's URL, or an app's own) with client c and checks its bytes.
func download(ctx context.Context, c *http.Client, base string, f file, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/files/"+f.id, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	b, resp, err := fleet.Do(c, req, http.StatusOK)
	if err != nil {
		return resp, err
	}
	if !bytes.Equal(b, f.data) {
		return resp, fmt.Errorf("GET /api/files/%s (request %s): got %d bytes differing from the %d uploaded", f.id, req.Header.Get("X-Request-ID"), len(b), len(f.data))
	}
	return resp, nil
}

// userLoad is the load of the outage and rollout tests: each worker, as its own user,
// alternates GET /api/me and a download of its file.
func userLoad(users []*user, d time.Duration) fleet.LoadOptions {
	n := make([]int, len(users))
	return fleet.LoadOptions{
		Workers:  len(users),
		Duration: d,
		Pause:    2 * time.Millisecond,
		Request: func(ctx context.Context, w int) error {
			u := users[w]
			n[w]++
			if n[w]%2 == 0 && len(u.files) > 0 {
				_, err := download(ctx, u.c, u.base, u.files[0], nil)
				return err
			}
			_, _, err := u.me(ctx)
			return err
		},
	}
}

// makeUsers creates n users, each with its own client (HTTPS through lb, cookies)
// and one uploaded file of size bytes.
func makeUsers(t *testing.T, f *fleet.Fleet, prefix string, n, size int) []*user {
	t.Helper()
	var users []*user
	for i := range n {
		u := newUser(t, f, f.Client(fleet.ClientOptions{Cookies: true}), fmt.Sprintf("%s%d", prefix, i))
		u.upload(t, fmt.Sprintf("%s-%d.bin", prefix, i), size)
		users = append(users, u)
	}
	return users
}

// report logs a load result the same way in every test.
func report(t *testing.T, phase string, r fleet.Result) {
	t.Helper()
	t.Logf("%s: %v", phase, r)
}

// lbRequestLine waits up to 5 s for lb's request line for request id and returns it,
// or nil if lb wrote none.
func lbRequestLine(t *testing.T, f *fleet.Fleet, id string) *fleet.Line {
	t.Helper()
	var line *fleet.Line
	poll(t, 5*time.Second, func() bool {
		lines, err := f.RequestLines(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines[id] {
			if l.Proc == "lb" {
				line = &l
			}
		}
		return line != nil
	})
	return line
}
