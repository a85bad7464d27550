package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"outrigger/internal/labfleet"
)

// dbLoad is the load of the database failover test: each worker, as its own user logged
// in through the virtual IP, goes round GET /api/me, a download of one of its files
// (sha256 checked), an upload (its sha256 kept once acknowledged), the listing of its files
// (every entry checked against what was uploaded under that name: no partial file) and a
// login. Every request is recorded with its outcome.
type dbLoad struct {
	base  string
	users []*dbUser

	mu      sync.Mutex
	results []dbResult
	// sent is every upload attempted, by name: the size and sha256 it must be listed with.
	sent map[string]upload
	// acked are the uploads answered 201; refused those answered 503, when (nothing may
	// remain of them). lingering is when a refused upload was last seen listed: one whose
	// last commit reached the standby before its primary crashed is whole, and listed
	// until the app's retry of its deletion (DeleteFailedUploads) succeeds.
	acked     map[string]upload
	refused   map[string]time.Time
	lingering map[string]time.Time
	bad       []string // violations seen (a partial file listed, a cookie rewritten, ...)

	// moves are when the virtual IP changed hands (keepalived), seen every 50 ms: a
	// connection to the address is reset then, whatever the database does.
	moves []time.Time

	stop chan struct{}
	wg   sync.WaitGroup
}

type upload struct {
	id, sha string
	size    int
}

type dbUser struct {
	name, password string
	c              *http.Client // with the session cookie
	login          *http.Client // logs in again and again, without a cookie jar
	cookie         string       // the session cookie after the first login
	files          []upload     // acknowledged uploads (only its worker touches it)
}

// dbResult is one request: what, when, and how it ended. status 0: no response.
type dbResult struct {
	kind       string
	start, end time.Time
	status     int
	retryAfter bool
	err        string
}

func (r dbResult) ok() bool { return r.err == "" }

// movedNear reports whether the virtual IP changed hands while r was in flight (give or
// take a second): a reset then is the lb pair's doing (DESIGN's point 5 counts it apart),
// not the database's.
func (d *dbLoad) movedNear(r dbResult) bool {
	for _, m := range d.moves {
		if m.After(r.start.Add(-time.Second)) && m.Before(r.end.Add(time.Second)) {
			return true
		}
	}
	return false
}

// unavailable is a 503 with Retry-After: what DESIGN allows while the database is away.
func (r dbResult) unavailable() bool {
	return r.status == http.StatusServiceUnavailable && r.retryAfter
}

func newDBLoad(t *testing.T, fl *labfleet.Fleet, workers int) *dbLoad {
	t.Helper()
	d := &dbLoad{base: fl.URL, sent: map[string]upload{}, acked: map[string]upload{}, refused: map[string]time.Time{},
		lingering: map[string]time.Time{}}
	for i := range workers {
		jar, _ := cookiejar.New(nil)
		c := fl.NewHTTPClient()
		c.Jar, c.Timeout = jar, 60*time.Second
		login := fl.NewHTTPClient()
		login.Timeout = 60 * time.Second
		u := &dbUser{name: fmt.Sprintf("pg%d", i), password: "failover horse battery " + fmt.Sprint(i), c: c, login: login}
		cred := map[string]string{"username": u.name, "password": u.password}
		if _, err := doJSON(t.Context(), c, http.MethodPost, d.base+"/api/signup", cred, nil, http.StatusCreated); err != nil {
			t.Fatalf("signup %s: %v", u.name, err)
		}
		if _, err := doJSON(t.Context(), c, http.MethodPost, d.base+"/api/login", cred, nil, http.StatusOK); err != nil {
			t.Fatalf("login %s: %v", u.name, err)
		}
		u.cookie = d.cookieOf(u)
		d.users = append(d.users, u)
	}
	return d
}

func (d *dbLoad) cookieOf(u *dbUser) string {
	base, _ := url.Parse(d.base)
	var parts []string
	for _, c := range u.c.Jar.Cookies(base) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// start starts the workers and the watch on the virtual IP; halt stops them and waits.
func (d *dbLoad) start(fl *labfleet.Fleet) {
	d.stop = make(chan struct{})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		last := ""
		for {
			if h, err := fl.Holder(); err == nil && h.Name != last {
				if last != "" {
					d.mu.Lock()
					d.moves = append(d.moves, time.Now())
					d.mu.Unlock()
				}
				last = h.Name
			}
			select {
			case <-d.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	for _, u := range d.users {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.work(u)
		}()
	}
}

func (d *dbLoad) halt() {
	close(d.stop)
	d.wg.Wait()
}

var dbOps = []string{"me", "download", "upload", "list", "login"}

func (d *dbLoad) work(u *dbUser) {
	for n := 0; ; n++ {
		select {
		case <-d.stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
		kind := dbOps[n%len(dbOps)]
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		r := dbResult{kind: kind, start: time.Now()}
		var err error
		switch kind {
		case "me":
			err = d.me(ctx, u, &r)
		case "download":
			err = d.download(ctx, u, &r)
		case "upload":
			err = d.upload(ctx, u, &r, fmt.Sprintf("%s-%d.bin", u.name, n))
		case "list":
			err = d.list(ctx, u, &r)
		case "login":
			err = d.relogin(ctx, u, &r)
		}
		cancel()
		r.end = time.Now()
		if err != nil {
			r.err = err.Error()
		}
		d.mu.Lock()
		d.results = append(d.results, r)
		d.mu.Unlock()
	}
}

// send does req and reads the body; any status but want is an error. A Set-Cookie on
// anything but a login is a violation (DESIGN: the cookie is never rewritten).
func (d *dbLoad) send(c *http.Client, req *http.Request, r *dbResult, want int) ([]byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	r.status, r.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After") != ""
	if err != nil {
		return nil, fmt.Errorf("status %d, body broken: %w", resp.StatusCode, err)
	}
	if r.kind != "login" && len(resp.Header.Values("Set-Cookie")) > 0 {
		d.violation("%s %s answered %d with Set-Cookie %q", req.Method, req.URL.Path, resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
	if resp.StatusCode != want {
		return body, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body[:min(len(body), 120)]))
	}
	return body, nil
}

func (d *dbLoad) violation(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.bad) < 50 {
		d.bad = append(d.bad, fmt.Sprintf(format, args...))
	}
}

func (d *dbLoad) me(ctx context.Context, u *dbUser, r *dbResult) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/api/me", nil)
	b, err := d.send(u.c, req, r, http.StatusOK)
	if err != nil {
		return err
	}
	var m struct{ Username string }
	if err := json.Unmarshal(b, &m); err != nil || m.Username != u.name {
		return fmt.Errorf("/api/me: %q, want user %s", b, u.name)
	}
	return nil
}

func (d *dbLoad) download(ctx context.Context, u *dbUser, r *dbResult) error {
	if len(u.files) == 0 {
		return d.me(ctx, u, r)
	}
	f := u.files[int(time.Now().UnixNano()/1000)%len(u.files)]
	return d.fetch(ctx, u, r, f)
}

func (d *dbLoad) fetch(ctx context.Context, u *dbUser, r *dbResult, f upload) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/api/files/"+f.id, nil)
	b, err := d.send(u.c, req, r, http.StatusOK)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != f.sha || len(b) != f.size {
		d.violation("file %s downloaded as %d bytes sha256 %s, acknowledged as %d bytes %s", f.id, len(b), got, f.size, f.sha)
		return fmt.Errorf("file %s: wrong bytes", f.id)
	}
	return nil
}

func (d *dbLoad) upload(ctx context.Context, u *dbUser, r *dbResult, name string) error {
	size := 16<<10 + int(time.Now().UnixNano()%(300<<10)) // one or two chunks
	data := make([]byte, size)
	rand.Read(data)
	sum := sha256.Sum256(data)
	want := upload{sha: hex.EncodeToString(sum[:]), size: size}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(data)
	mw.Close()
	d.mu.Lock()
	d.sent[name] = want
	d.mu.Unlock()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.base+"/api/files", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	b, err := d.send(u.c, req, r, http.StatusCreated)
	if err != nil {
		if r.unavailable() {
			d.mu.Lock()
			d.refused[name] = r.end
			d.mu.Unlock()
		}
		return err
	}
	var got struct {
		ID, Sha256 string
		Size       int
	}
	if err := json.Unmarshal(b, &got); err != nil || got.Sha256 != want.sha || got.Size != size {
		d.violation("upload %s acknowledged as %q, want size %d sha256 %s", name, b, size, want.sha)
		return fmt.Errorf("upload %s: wrong acknowledgement", name)
	}
	want.id = got.ID
	u.files = append(u.files, want)
	d.mu.Lock()
	d.acked[name] = want
	d.mu.Unlock()
	return nil
}

// list checks every listed file against the upload of that name: same size and sha256
// (never a partial file), never one answered 503.
func (d *dbLoad) list(ctx context.Context, u *dbUser, r *dbResult) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/api/files?limit=1000", nil)
	b, err := d.send(u.c, req, r, http.StatusOK)
	if err != nil {
		return err
	}
	d.checkListing(u, b, false)
	return nil
}

// checkListing checks a listing of u's files; final: nothing refused may be listed any
// more.
func (d *dbLoad) checkListing(u *dbUser, b []byte, final bool) {
	var entries []struct {
		ID, Name, Sha256 string
		Size             int
	}
	if err := json.Unmarshal(b, &entries); err != nil {
		d.violation("listing of %s: %v: %q", u.name, err, b)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range entries {
		want, ok := d.sent[e.Name]
		switch {
		case !ok:
			d.bad = append(d.bad, fmt.Sprintf("%s lists %s, never uploaded", u.name, e.Name))
		case e.Size != want.size || e.Sha256 != want.sha:
			d.bad = append(d.bad, fmt.Sprintf("%s lists %s with %d bytes sha256 %s: a partial file (uploaded %d bytes %s)", u.name, e.Name, e.Size, e.Sha256, want.size, want.sha))
		case !d.refused[e.Name].IsZero() && final:
			d.bad = append(d.bad, fmt.Sprintf("%s lists %s (%s), whose upload was answered 503, at the end", u.name, e.Name, e.ID))
		case !d.refused[e.Name].IsZero():
			d.lingering[e.Name] = time.Now()
		}
	}
}

func (d *dbLoad) relogin(ctx context.Context, u *dbUser, r *dbResult) error {
	cred, _ := json.Marshal(map[string]string{"username": u.name, "password": u.password})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.base+"/api/login", bytes.NewReader(cred))
	req.Header.Set("Content-Type", "application/json")
	_, err := d.send(u.login, req, r, http.StatusOK)
	return err
}

// window are the results of requests that started in [from, to).
func (d *dbLoad) window(from, to time.Time) []dbResult {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []dbResult
	for _, r := range d.results {
		if !r.start.Before(from) && r.start.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

// get is a GET of url with u's session; the body when 200.
func (d *dbLoad) get(ctx context.Context, u *dbUser, r *dbResult, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	r.kind = "list"
	return d.send(u.c, req, r, http.StatusOK)
}

func containsID(listing []byte, id string) bool {
	return bytes.Contains(listing, []byte(`"id":"`+id+`"`))
}
