package pgsession

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"outrigger/internal/app/store"
	"outrigger/internal/pgtest"
)

// benchRequest loads the session of cookie c, lets change modify it, and saves it.
func benchRequest(b *testing.B, st *Store, c *http.Cookie, change func(map[any]any)) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(c)
	w := httptest.NewRecorder()
	s, err := st.Get(r, st.Name())
	if err != nil || s.IsNew {
		b.Fatalf("Get: %v, IsNew %v", err, s.IsNew)
	}
	if change != nil {
		change(s.Values)
	}
	if err := s.Save(r, w); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLoadSave is the common request: load a logged-in session, save it unchanged
// (inside the MaxAge/10 window: one SELECT, no write).
func BenchmarkLoadSave(b *testing.B) {
	pool := pgtest.Pool(b, store.Migrate)
	st := newStore(b, pool, []string{secret1, secret2}, Options{Secure: true})
	c := login(b, st, 42)
	b.ReportAllocs()
	for b.Loop() {
		benchRequest(b, st, c, nil)
	}
}

// BenchmarkLoadSaveChanged loads a session and saves a changed value (SELECT + UPDATE).
func BenchmarkLoadSaveChanged(b *testing.B) {
	pool := pgtest.Pool(b, store.Migrate)
	st := newStore(b, pool, []string{secret1, secret2}, Options{Secure: true})
	c := login(b, st, 42)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		benchRequest(b, st, c, func(v map[any]any) { v["n"] = i })
	}
}

// BenchmarkLogin stores a new session (INSERT) and encodes its cookie.
func BenchmarkLogin(b *testing.B) {
	pool := pgtest.Pool(b, store.Migrate)
	st := newStore(b, pool, []string{secret1, secret2}, Options{Secure: true})
	b.ReportAllocs()
	for b.Loop() {
		login(b, st, 42)
	}
}
