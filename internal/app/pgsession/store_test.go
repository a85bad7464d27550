package pgsession

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/jackc/pgx/v5/pgxpool"

	"outrigger/internal/app/pgretry"
	"outrigger/internal/app/store"
	"outrigger/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

var (
	secret1 = strings.Repeat("a", 31) + "1"
	secret2 = strings.Repeat("b", 31) + "2"
	secret3 = strings.Repeat("c", 31) + "3"
)

func newStore(t testing.TB, pool *pgxpool.Pool, secrets []string, opts Options) *Store {
	t.Helper()
	s, err := New(testDB(pool), secrets, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// testDB is pool with a short retry budget, so that tests of outages are quick.
func testDB(pool *pgxpool.Pool) *pgretry.DB {
	return pgretry.New(pool, pgretry.Options{Budget: 2 * time.Second})
}

// result is what one request saw and sent.
type result struct {
	sess    *sessions.Session
	getErr  error
	saveErr error
	cookies []*http.Cookie // Set-Cookie of the response
}

// cookie returns the response's cookie called name, or nil.
func (r result) cookie(name string) *http.Cookie {
	for _, c := range r.cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// request runs one request carrying cookies through st: Get, then change (if not nil),
// then Save unless change returns false.
func request(t testing.TB, st *Store, cookies []*http.Cookie, change func(r *http.Request, s *sessions.Session) bool) result {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	var res result
	res.sess, res.getErr = st.Get(r, st.Name())
	if res.sess == nil {
		t.Fatal("Get returned a nil session")
	}
	save := res.getErr == nil
	if change != nil && save {
		save = change(r, res.sess)
	}
	if save {
		res.saveErr = res.sess.Save(r, w)
	}
	res.cookies = w.Result().Cookies()
	return res
}

func setValues(kv ...any) func(*http.Request, *sessions.Session) bool {
	return func(_ *http.Request, s *sessions.Session) bool {
		for i := 0; i < len(kv); i += 2 {
			s.Values[kv[i]] = kv[i+1]
		}
		return true
	}
}

// login stores a session with user_id and returns its cookie.
func login(t testing.TB, st *Store, userID int64) *http.Cookie {
	t.Helper()
	res := request(t, st, nil, setValues("user_id", userID))
	if res.getErr != nil || res.saveErr != nil {
		t.Fatalf("login: get %v, save %v", res.getErr, res.saveErr)
	}
	c := res.cookie(st.Name())
	if c == nil {
		t.Fatal("login: no session cookie")
	}
	return c
}

func rows(t testing.TB, pool *pgxpool.Pool, where string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM sessions WHERE "+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func modifiedAt(t testing.TB, pool *pgxpool.Pool, id string) (modified, expires time.Time) {
	t.Helper()
	key := sha256.Sum256([]byte(id))
	if err := pool.QueryRow(context.Background(), "SELECT modified_at, expires_at FROM sessions WHERE key = $1", key[:]).Scan(&modified, &expires); err != nil {
		t.Fatalf("session row of %s: %v", id, err)
	}
	return modified, expires
}

func TestRoundTrip(t *testing.T) {
	pool := pgtest.Pool(t, store.Migrate)
	st := newStore(t, pool, []string{secret1}, Options{MaxAge: time.Hour, Secure: true})

	first := request(t, st, nil, setValues("user_id", int64(42), "name", "alice"))
	if first.getErr != nil || first.saveErr != nil || !first.sess.IsNew {
		t.Fatalf("first request: get %v, save %v, IsNew %v", first.getErr, first.saveErr, first.sess.IsNew)
	}
	c := first.cookie(SecureCookieName)
	if c == nil {
		t.Fatalf("cookies %v: no %s", first.cookies, SecureCookieName)
	}
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" || c.MaxAge != 3600 {
		t.Errorf("cookie attributes: got %+v, want Secure HttpOnly SameSite=Lax Path=/ no Domain Max-Age=3600", c)
	}
	id := first.sess.ID
	if strings.Contains(c.Value, id) {
		t.Error("cookie carries the session id in the clear")
	}
	if got := rows(t, pool, "true"); got != 1 {
		t.Fatalf("rows: got %d, want 1", got)
	}
	key := sha256.Sum256([]byte(id))
	if got := rows(t, pool, "key = $1 AND position('alice' in convert_from(data, 'SQL_ASCII')) = 0", key[:]); got != 1 {
		t.Error("row not keyed by sha256(id), or data holds the values in the clear")
	}

	second := request(t, st, []*http.Cookie{c}, nil)
	if second.getErr != nil || second.sess.IsNew || second.sess.ID != id {
		t.Fatalf("second request: err %v, IsNew %v, ID match %v", second.getErr, second.sess.IsNew, second.sess.ID == id)
	}
	if got := second.sess.Values["user_id"]; got != int64(42) {
		t.Errorf("user_id: got %v, want 42", got)
	}
	if got := second.sess.Values["name"]; got != "alice" {
		t.Errorf("name: got %v, want alice", got)
	}
	if len(second.cookies) != 0 {
		t.Errorf("unchanged session: got Set-Cookie %v, want none", second.cookies)
	}
}

func TestPlainCookie(t *testing.T) {
	pool := pgtest.Pool(t, store.Migrate)
	st := newStore(t, pool, []string{secret1}, Options{Secure: false})
	if st.Name() != PlainCookieName {
		t.Errorf("Name: got %q, want %q", st.Name(), PlainCookieName)
	}
	c := login(t, st, 1)
	if c.Secure || !c.HttpOnly || c.MaxAge != int(DefaultMaxAge/time.Second) {
		t.Errorf("cookie: got %+v, want not Secure, HttpOnly, Max-Age %d", c, int(DefaultMaxAge/time.Second))
	}
	if got := request(t, st, []*http.Cookie{c}, nil).sess.Values["user_id"]; got != int64(1) {
		t.Errorf("user_id: got %v, want 1", got)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	pool := pgtest.Pool(t, nil)
	tests := []struct {
		name    string
		secrets []string
		opts    Options
	}{
		{"no secret", nil, Options{}},
		{"short secret", []string{strings.Repeat("x", MinSecretLen-1)}, Options{}},
		{"short second secret", []string{secret1, "short"}, Options{}},
		{"duplicate secrets", []string{secret1, secret2, secret1}, Options{}},
		{"__Host- without Secure", []string{secret1}, Options{CookieName: "__Host-x"}},
		{"negative MaxAge", []string{secret1}, Options{MaxAge: -time.Second}},
	}
	for _, tt := range tests {
		if _, err := New(testDB(pool), tt.secrets, tt.opts); err == nil {
			t.Errorf("%s: got nil error, want one", tt.name)
		}
	}
	// 32 multi-byte characters are 32 characters.
	if _, err := New(testDB(pool), []string{strings.Repeat("é", MinSecretLen)}, Options{}); err != nil {
		t.Errorf("32 two-byte characters: %v", err)
	}
}

func TestNoAnonymousRows(t *testing.T) {
	pool := pgtest.Pool(t, store.Migrate)
	st := newStore(t, pool, []string{secret1}, Options{Secure: true})
	res := request(t, st, nil, func(*http.Request, *sessions.Session) bool { return true })
	if res.getErr != nil || res.saveErr != nil {
		t.Fatalf("get %v, save %v", res.getErr, res.saveErr)
	}
	if len(res.cookies) != 0 {
		t.Errorf("anonymous session: got Set-Cookie %v, want none", res.cookies)
	}
	if got := rows(t, pool, "true"); got != 0 {
		t.Errorf("rows: got %d, want 0", got)
	}
}

func TestTamperedCookie(t *testing.T) {
	pool := pgtest.Pool(t, store.Migrate)
	st := newStore(t, pool, []string{secret1}, Options{Secure: true})
	c := login(t, st, 7)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	other := newStore(t, pool, []string{secret2}, Options{Secure: true})
	otherCookie := login(t, other, 8)
	tests := []struct{ name, value string }{
		{"flipped first byte", flip(c.Value, 0)},
		{"flipped middle byte", flip(c.Value, len(c.Value)/2)},
		{"flipped last byte", flip(c.Value, len(c.Value)-1)},
		{"truncated", c.Value[:len(c.Value)-4]},
		{"empty", ""},
		{"garbage", "not-a-session"},
		{"another key's cookie", otherCookie.Value},
	}
	for _, tt := range tests {
		res := request(t, st, []*http.Cookie{{Name: st.Name(), Value: tt.value}}, nil)
		if res.getErr != nil {
			t.Errorf("%s: got error %v, want a new session", tt.name, res.getErr)
		}
		if !res.sess.IsNew || res.sess.ID != "" || len(res.sess.Values) != 0 {
			t.Errorf("%s: got IsNew %v, ID %q, values %v; want a new empty session", tt.name, res.sess.IsNew, res.sess.ID, res.sess.Values)
		}
	}
	if got := request(t, st, []*http.Cookie{c}, nil).sess.Values["user_id"]; got != int64(7) {
		t.Errorf("untouched cookie: user_id %v, want 7", got)
	}
}

func TestRotation(t *testing.T) {
	pool := pgtest.Pool(t, store.Migrate)
	old := newStore(t, pool, []string{secret1}, Options{Secure: true})
	c := login(t, old, 5)

	rotated := newStore(t, pool, []string{secret2, secret1}, Options{Secure: true})
	res := request(t, rotated, []*http.Cookie{c}, setValues("seen", true))
	if res.getErr != nil || res.saveErr != nil || res.sess.Values["user_id"] != int64(5) {
		t.Fatalf("rotated store reading an old-key session: get %v, save %v, values %v", res.getErr, res.saveErr, res.sess.Values)
	}
	// The save re-encoded the cookie and the row with the new key.
	newCookie := res.cookie(rotated.Name())
	if newCookie == nil || newCookie.Value == c.Value {
		t.Fatal("save after a change: want a cookie encoded with the new key")
	}
	onlyNew := newStore(t, pool, []string{secret2}, Options{Secure: true})
	if got := request(t, onlyNew, []*http.Cookie{newCookie}, nil); got.getErr != nil || got.sess.Values["user_id"] != int64(5) {
		t.Errorf("new-key store, re-encoded session: err %v, values %v; want user_id 5", got.getErr, got.sess.Values)
	}
	if got := request(t, onlyNew, []*http.Cookie{c}, nil); got.getErr != nil || !got.sess.IsNew {
		t.Errorf("new-key store, old-key cookie: err %v, IsNew %v; want a new session", got.getErr, got.sess.IsNew)
	}
	unrelated := newStore(t, pool, []string{secret3}, Options{Secure: true})
	if got := request(t, unrelated, []*http.Cookie{newCookie}, nil); got.getErr != nil || !got.sess.IsNew {
		t.Errorf("unrelated key: err %v, IsNew %v; want a new session", got.getErr, got.sess.IsNew)
	}
}

func TestExpiry(t *testing.T) {
	pool := pgtest.Pool(t, store.Migrate)
	st := newStore(t, pool, []string{secret1}, Options{Secure: true, MaxAge: time.Hour})
	c := login(t, st, 3)
	if _, err := pool.Exec(t.Context(), "UPDATE sessions SET expires_at = now() - interval '1 second'"); err != nil {
		t.Fatal(err)
	}
	res := request(t, st, []*http.Cookie{c}, nil)
	if res.getErr != nil || !res.sess.IsNew || len(res.sess.Values) != 0 {
		t.Errorf("expired session: err %v, IsNew %v, values %v; want a new empty session", res.getErr, res.sess.IsNew, res.sess.Values)
	}

	// A session that expires (or is deleted) between load and save is not brought back.
	c = login(t, st, 4)
	res = request(t, st, []*http.Cookie{c}, func(r *http.Request, s *sessions.Session) bool {
		if _, err := pool.Exec(r.Context(), "UPDATE sessions SET expires_at = now() - interval '1 second'"); err != nil {
			t.Fatal(err)
		}
		s.Values["more"] = "x"
		return true
	})
	if res.saveErr != nil {
		t.Fatalf("save: %v", res.saveErr)
	}
	if got := rows(t, pool, "expires_at > now()"); got != 0 {
		t.Errorf("live rows: got %d, want 0", got)
	}
	if rc := res.cookie(st.Name()); rc == nil || rc.MaxAge >= 0 {
		t.Errorf("cookie of a vanished session: got %+v, want it expired", rc)
	}
}

func TestThrottledSlide(t *testing.T) {
	pool := pgtest.Pool(t, store.Migrate)
	st := newStore(t, pool, []string{secret1}, Options{Secure: true, MaxAge: time.Hour}) // writes at most every 6 min
	res := request(t, st, nil, setValues("user_id", int64(9), "a", "1", "b", 2, "c", 3.5, "d", []string{"x"}))
	c := res.cookie(st.Name())
	id := res.sess.ID
	m1, e1 := modifiedAt(t, pool, id)

	// Unchanged values inside the window: no write, no cookie.
	for range 3 {
		res = request(t, st, []*http.Cookie{c}, func(*http.Request, *sessions.Session) bool { return true })
		if res.saveErr != nil || len(res.cookies) != 0 {
			t.Fatalf("unchanged save: err %v, cookies %v; want no error, no cookie", res.saveErr, res.cookies)
		}
	}
	if m, e := modifiedAt(t, pool, id); !m.Equal(m1) || !e.Equal(e1) {
		t.Errorf("unchanged save inside the window wrote the row: modified %v -> %v", m1, m)
	}

	// A changed value is written at once.
	res = request(t, st, []*http.Cookie{c}, setValues("a", "changed"))
	if res.saveErr != nil || res.cookie(st.Name()) == nil {
		t.Fatalf("changed save: err %v, cookies %v", res.saveErr, res.cookies)
	}
	m2, _ := modifiedAt(t, pool, id)
	if !m2.After(m1) {
		t.Errorf("changed save: modified_at %v, want after %v", m2, m1)
	}

	// Past MaxAge/10, an unchanged save slides the expiry and re-sends the cookie.
	if _, err := pool.Exec(t.Context(), `UPDATE sessions SET modified_at = modified_at - interval '7 minutes',
		expires_at = expires_at - interval '7 minutes'`); err != nil {
		t.Fatal(err)
	}
	res = request(t, st, []*http.Cookie{c}, func(*http.Request, *sessions.Session) bool { return true })
	if res.saveErr != nil || res.cookie(st.Name()) == nil {
		t.Fatalf("save past the window: err %v, cookies %v; want a cookie", res.saveErr, res.cookies)
	}
	m3, e3 := modifiedAt(t, pool, id)
	if time.Since(m3) > time.Minute || time.Until(e3) < 59*time.Minute {
		t.Errorf("save past the window: modified %v, expires %v; want now and now+1h", m3, e3)
	}
	if got := request(t, st, []*http.Cookie{c}, nil).sess.Values["a"]; got != "changed" {
		t.Errorf("value a: got %v, want changed", got)
	}
}

func TestLogout(t *testing.T) {
	pool := pgtest.Pool(t, store.Migrate)
	st := newStore(t, pool, []string{secret1}, Options{Secure: true})
	tests := []struct {
		name   string
		logout func(*http.Request, *sessions.Session) bool
	}{
		{"MaxAge -1", func(_ *http.Request, s *sessions.Session) bool { s.Options.MaxAge = -1; return true }},
		{"values cleared", func(_ *http.Request, s *sessions.Session) bool { clear(s.Values); return true }},
	}
	for _, tt := range tests {
		c := login(t, st, 11)
		res := request(t, st, []*http.Cookie{c}, tt.logout)
		if res.saveErr != nil {
			t.Fatalf("%s: save %v", tt.name, res.saveErr)
		}
		if rc := res.cookie(st.Name()); rc == nil || rc.MaxAge >= 0 || rc.Value != "" {
			t.Errorf("%s: cookie %+v, want it expired", tt.name, rc)
		}
		if got := rows(t, pool, "true"); got != 0 {
			t.Errorf("%s: rows %d, want 0", tt.name, got)
		}
		if got := request(t, st, []*http.Cookie{c}, nil); !got.sess.IsNew {
			t.Errorf("%s: the old cookie still has a session", tt.name)
		}
	}
}

func TestRenewID(t *testing.T) {
	pool := pgtest.Pool(t, store.Migrate)
	st := newStore(t, pool, []string{secret1}, Options{Secure: true})
	before := login(t, st, 1) // e.g. a session planted by an attacker
	var oldID string
	res := request(t, st, []*http.Cookie{before}, func(r *http.Request, s *sessions.Session) bool {
		oldID = s.ID
		st.RenewID(r, s)
		s.Values["user_id"] = int64(2)
		return true
	})
	if res.saveErr != nil {
		t.Fatal(res.saveErr)
	}
	after := res.cookie(st.Name())
	if after == nil || after.Value == before.Value || res.sess.ID == oldID || res.sess.ID == "" {
		t.Fatalf("after RenewID and Save: cookie %v, id changed %v; want a new cookie and id", after, res.sess.ID != oldID)
	}
	if got := request(t, st, []*http.Cookie{before}, nil); !got.sess.IsNew {
		t.Error("the pre-login cookie still has a session")
	}
	if got := request(t, st, []*http.Cookie{after}, nil).sess.Values["user_id"]; got != int64(2) {
		t.Errorf("new session user_id: got %v, want 2", got)
	}
	if got := rows(t, pool, "true"); got != 1 {
		t.Errorf("rows: got %d, want 1", got)
	}
}

func insertExpired(t testing.TB, pool *pgxpool.Pool, n int) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `INSERT INTO sessions (key, data, expires_at)
		SELECT sha256(gen_random_uuid()::text::bytea), 'x', now() - interval '1 minute' FROM generate_series(1, $1)`, n); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteExpired(t *testing.T) {
	ctx := t.Context()
	pool := pgtest.Pool(t, store.Migrate)
	st := newStore(t, pool, []string{secret1}, Options{Secure: true})
	for i := range 3 {
		login(t, st, int64(i))
	}
	insertExpired(t, pool, 2500)

	// Another app server is cleaning up: this one does nothing.
	holder, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", cleanupLockKey); err != nil {
		t.Fatal(err)
	}
	n, locked, err := st.DeleteExpired(ctx)
	if err != nil || locked || n != 0 {
		t.Errorf("DeleteExpired while another holds the lock: got %d, %v, %v; want 0, false, nil", n, locked, err)
	}
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock($1)", cleanupLockKey); err != nil {
		t.Fatal(err)
	}
	holder.Release()

	n, locked, err = st.DeleteExpired(ctx)
	if err != nil || !locked || n != 2500 {
		t.Errorf("DeleteExpired: got %d, %v, %v; want 2500, true, nil", n, locked, err)
	}
	if got := rows(t, pool, "true"); got != 3 {
		t.Errorf("rows left: got %d, want the 3 live ones", got)
	}
	if got := scalarInt(t, pool, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"); got != 0 {
		t.Errorf("advisory locks held after DeleteExpired: %d, want 0", got)
	}

	// Cleanup runs the same on a ticker until its context ends.
	insertExpired(t, pool, 10)
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { st.Cleanup(cctx, 20*time.Millisecond) })
	waitFor(t, "Cleanup to delete the expired rows", func() bool { return rows(t, pool, "expires_at <= now()") == 0 })
	insertExpired(t, pool, 10)
	waitFor(t, "Cleanup to delete later expired rows", func() bool { return rows(t, pool, "expires_at <= now()") == 0 })
	cancel()
	wg.Wait()
	if got := rows(t, pool, "true"); got != 3 {
		t.Errorf("rows after Cleanup: got %d, want 3", got)
	}
}

func scalarInt(t testing.TB, pool *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond every 10 ms until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stillLoggedIn checks that several requests in a row, the first included, find user 77.
func stillLoggedIn(t *testing.T, st *Store, c *http.Cookie, when string) {
	t.Helper()
	for i := range 4 {
		res := request(t, st, []*http.Cookie{c}, nil)
		if res.getErr != nil {
			t.Fatalf("request %d %s: %v", i, when, res.getErr)
		}
		if got := res.sess.Values["user_id"]; got != int64(77) {
			t.Fatalf("request %d %s: user_id %v, want 77 (still logged in)", i, when, got)
		}
	}
}

// TestDatabaseRestart: PostgreSQL restarts while a user is logged in. While it is down, Get
// fails (the app answers 503 and leaves the cookie alone); once it is back, the very first
// request finds the session, although every pooled connection died.
func TestDatabaseRestart(t *testing.T) {
	for _, tt := range []struct {
		name string
		port int
	}{{"unix socket", 0}, {"tcp", pgtest.FreePort(t)}} {
		t.Run(tt.name, func(t *testing.T) { testDatabaseRestart(t, tt.port) })
	}
}

func testDatabaseRestart(t *testing.T, port int) {
	ctx := t.Context()
	cluster := pgtest.NewCluster(t, pgtest.ClusterOptions{Port: port})
	// Never ping before use, so the dead connections are really used after the restart.
	pool := pgtest.OpenPool(t, cluster.DSN("postgres"), func(c *pgxpool.Config) {
		c.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	}, store.Migrate)
	st := newStore(t, pool, []string{secret1}, Options{Secure: true})
	c := login(t, st, 77)
	// Fill the pool with connections that the restart will kill.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { request(t, st, []*http.Cookie{c}, nil) })
	}
	wg.Wait()

	// A quick restart: every pooled connection is dead, none idle long enough to be pinged.
	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stillLoggedIn(t, st, c, "after a quick restart")

	// A longer outage: Get fails meanwhile (503), and nothing touches the cookie.
	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	down := request(t, st, []*http.Cookie{c}, nil)
	if down.getErr == nil {
		t.Error("Get with the database down: got nil error, want one (503)")
	}
	if len(down.cookies) != 0 {
		t.Errorf("database down: got Set-Cookie %v, want the cookie left alone", down.cookies)
	}
	if err := cluster.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stillLoggedIn(t, st, c, "after an outage")
	// And writes work again.
	if res := request(t, st, []*http.Cookie{c}, setValues("after", "restart")); res.saveErr != nil {
		t.Errorf("save after the restart: %v", res.saveErr)
	}
}

func TestSaveDatabaseDown(t *testing.T) {
	ctx := t.Context()
	cluster := pgtest.NewCluster(t, pgtest.ClusterOptions{})
	pool := pgtest.OpenPool(t, cluster.DSN("postgres"), nil, store.Migrate)
	st := newStore(t, pool, []string{secret1}, Options{Secure: true})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	s, err := st.Get(r, st.Name())
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	s.Values["user_id"] = int64(1)
	w := httptest.NewRecorder()
	if err := s.Save(r, w); err == nil {
		t.Error("Save with the database down: got nil error")
	}
	if got := w.Result().Cookies(); len(got) != 0 {
		t.Errorf("Save with the database down: got Set-Cookie %v, want none", got)
	}
}

// TestKeysDerivedByHKDF pins the key derivation (HKDF-SHA256 of each secret,
// as DESIGN says): the cookie opens with the derived keys, not with the secret
// itself. Changing the derivation would log every user out.
func TestKeysDerivedByHKDF(t *testing.T) {
	pool := pgtest.Pool(t, store.Migrate)
	st := newStore(t, pool, []string{secret1}, Options{Secure: true})
	c := login(t, st, 9)
	key := func(info string) []byte {
		k, err := hkdf.Key(sha256.New, []byte(secret1), []byte("outrigger pgsession v1"), info, 32)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	var id []byte
	derived := securecookie.New(key("cookie hmac"), key("cookie aes")).SetSerializer(securecookie.NopEncoder{})
	if err := derived.Decode(c.Name, c.Value, &id); err != nil || len(id) != idLen {
		t.Errorf("cookie with the HKDF-derived keys: %d-byte id, %v; want a %d-byte id", len(id), err, idLen)
	}
	raw := securecookie.New([]byte(secret1), []byte(secret1)).SetSerializer(securecookie.NopEncoder{})
	if err := raw.Decode(c.Name, c.Value, &id); err == nil {
		t.Errorf("the raw secret opens the cookie; want only the derived keys to")
	}
}
