package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"outrigger/internal/app/pgretry"
	"outrigger/internal/app/pgsession"
	"outrigger/internal/app/store"
	"outrigger/internal/clientip"
	"outrigger/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

const testSecret = "test-secret-0123456789abcdef-0123456789"

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the JSON log lines whose msg is msg.
func (s *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		var m map[string]any
		if l == "" {
			continue
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// testApp is one app server (NewServer behind an httptest TLS server).
type testApp struct {
	URL   string
	srv   *httptest.Server
	pool  *pgxpool.Pool
	st    *store.Store
	ready *Readiness
	log   *syncBuffer
	cfg   Config
}

// appOptions tune newTestApp.
type appOptions struct {
	pool    *pgxpool.Pool // nil: a fresh migrated database
	cfg     Config
	trusted []string // TRUSTED_PROXIES
	plain   bool     // plain HTTP, COOKIE_SECURE=false
	// notMigrated leaves Readiness as at start, before migrations ran.
	notMigrated bool
}

// newTestApp starts an app server on a real database.
func newTestApp(t testing.TB, o appOptions) *testApp {
	t.Helper()
	pool := o.pool
	if pool == nil {
		pool = pgtest.Pool(t, store.Migrate)
	}
	cfg := o.cfg
	if cfg.Instance == "" {
		cfg.Instance = "app-test"
	}
	if cfg.Version == "" {
		cfg.Version = "v1.2.3-test"
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.MinCost
	}
	if cfg.MaxTransfers == 0 {
		cfg.MaxTransfers = 4
	}
	if cfg.DBRetryTimeout == 0 {
		cfg.DBRetryTimeout = time.Second // outages in tests are answered quickly
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	db := pgretry.New(pool, pgretry.Options{Budget: cfg.DBRetryTimeout, Logger: logger})
	ips, err := clientip.NewResolver(o.trusted)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := pgsession.New(db, []string{testSecret}, pgsession.Options{Secure: !o.plain})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(db)
	ready := &Readiness{}
	if !o.notMigrated {
		ready.SetMigrated()
	}
	h := NewServer(cfg, logger, ips, st, sess, ready)
	var srv *httptest.Server
	if o.plain {
		srv = httptest.NewServer(h)
	} else {
		srv = httptest.NewTLSServer(h)
	}
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("log of %s:\n%s", cfg.Instance, logs.String())
		}
	})
	return &testApp{URL: srv.URL, srv: srv, pool: pool, st: st, ready: ready, log: logs, cfg: cfg.withDefaults()}
}

// agent is a user agent: an HTTP client with its own cookie jar.
type agent struct {
	t      testing.TB
	client *http.Client
}

// newAgent returns a client that trusts httptest's certificate (the same for
// every httptest TLS server) and keeps cookies.
func newAgent(t testing.TB) *agent {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	t.Cleanup(tr.CloseIdleConnections)
	return &agent{t: t, client: &http.Client{
		Jar:           jar,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// with returns the agent (same client and cookies) reporting to t, for use in t's subtests.
func (a *agent) with(t testing.TB) *agent { return &agent{t: t, client: a.client} }

// response is a read response.
type response struct {
	*http.Response
	Body []byte
}

// json decodes the body into v.
func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
}

// errorText is the "error" field of a JSON error body.
func (r response) errorText(t testing.TB) string {
	t.Helper()
	var e errorBody
	r.json(t, &e)
	if e.Error == "" {
		t.Errorf("error body %q has no error text", r.Body)
	}
	return e.Error
}

// do sends a request and reads the whole answer. Every answer must carry X-Instance.
func (a *agent) do(req *http.Request) response {
	a.t.Helper()
	resp, err := a.client.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	if resp.Header.Get("X-Instance") == "" {
		a.t.Errorf("%s %s: %d answer without X-Instance", req.Method, req.URL, resp.StatusCode)
	}
	return response{Response: resp, Body: body}
}

// request builds a request; a non-nil body that is not an io.Reader is sent as JSON.
func request(t testing.TB, method, url string, body any, header ...string) *http.Request {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		r = b
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, isReader := body.(io.Reader); body != nil && !isReader {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// call sends a request built by request.
func (a *agent) call(method, url string, body any, header ...string) response {
	a.t.Helper()
	return a.do(request(a.t, method, url, body, header...))
}

// wantStatus fails unless r has status want.
func wantStatus(t testing.TB, r response, want int) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body %q", r.Request.Method, r.Request.URL.Path, r.StatusCode, want, r.Body)
	}
}

// signupLogin creates user with password and logs the agent in.
func (a *agent) signupLogin(base, user, password string) {
	a.t.Helper()
	wantStatus(a.t, a.call("POST", base+"/api/signup", credentials{user, password}), http.StatusCreated)
	wantStatus(a.t, a.call("POST", base+"/api/login", credentials{user, password}), http.StatusOK)
}

// multipartBody returns a multipart form with one field "file" (named name,
// holding data) and its content type.
func multipartBody(t testing.TB, field, name string, data []byte) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": field, "filename": name}))
	h.Set("Content-Type", "application/octet-stream")
	pw, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	pw.Write(data)
	mw.Close()
	return &b, mw.FormDataContentType()
}

// upload sends data as the "file" field.
func (a *agent) upload(base, name string, data []byte) response {
	a.t.Helper()
	body, ctype := multipartBody(a.t, "file", name, data)
	return a.call("POST", base+"/api/files", body, "Content-Type", ctype)
}

// uploadFile uploads data as name and returns the stored file; the answer must be 201.
func (a *agent) uploadFile(base, name string, data []byte) fileBody {
	a.t.Helper()
	r := a.upload(base, name, data)
	wantStatus(a.t, r, http.StatusCreated)
	var f fileBody
	r.json(a.t, &f)
	return f
}

// count returns the rows of a table.
func count(t testing.TB, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// sessionCookie returns the session cookie the response set, or nil.
func sessionCookie(r response) *http.Cookie {
	for _, c := range r.Cookies() {
		if c.Name == pgsession.SecureCookieName || c.Name == pgsession.PlainCookieName {
			return c
		}
	}
	return nil
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// privateCluster starts a PostgreSQL server of this test's own (to stop and
// start) and returns it with a pool on its migrated postgres database.
func privateCluster(t testing.TB) (*pgtest.Cluster, *pgxpool.Pool) {
	t.Helper()
	cl := pgtest.NewCluster(t, pgtest.ClusterOptions{})
	return cl, pgtest.OpenPool(t, cl.DSN("postgres"), nil, store.Migrate)
}
