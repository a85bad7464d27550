package pgsession

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"outrigger/internal/app/pgretry"
	"outrigger/internal/app/store"
	"outrigger/internal/pgtest"
)

// TestLostAcksLeaveOneSession: the replies to a new session's insert, and to a logout's
// delete, are lost after the server committed them: each write is repeated on a new
// connection, the login leaves exactly one row and a working cookie, the logout none.
func TestLostAcksLeaveOneSession(t *testing.T) {
	cl := pgtest.TCPCluster(t, pgtest.ClusterOptions{})
	admin := pgtest.OpenPool(t, cl.DSN("postgres"), nil, store.Migrate)
	px := pgtest.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", cl.Port()))
	pool := pgtest.OpenPool(t, px.DSN(cl.DSN("postgres")), pgretry.ConfigurePool, nil)
	s, err := New(pgretry.New(pool, pgretry.Options{Budget: 5 * time.Second}), []string{secret1}, Options{Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	lost := false
	lose := func(prefix string) {
		lost = false
		px.LoseReplies(func(tag string) bool {
			if !lost && strings.HasPrefix(tag, prefix) {
				lost = true
				return true
			}
			return false
		})
	}
	stopLosing := func(what string) {
		t.Helper()
		px.LoseReplies(nil) // under the proxy's lock: lost is safe to read after
		if !lost {
			t.Fatalf("%s: no reply was lost", what)
		}
	}

	lose("INSERT")
	c := login(t, s, 42)
	stopLosing("login")
	if n := rows(t, admin, "true"); n != 1 {
		t.Errorf("%d session rows after a login whose insert was repeated, want 1", n)
	}
	res := request(t, s, []*http.Cookie{c}, nil)
	if res.getErr != nil || res.sess.Values["user_id"] != int64(42) {
		t.Fatalf("the session of that login: %v %v", res.sess.Values, res.getErr)
	}

	lose("DELETE")
	out := request(t, s, []*http.Cookie{c}, func(_ *http.Request, sess *sessions.Session) bool {
		sess.Options.MaxAge = -1
		return true
	})
	stopLosing("logout")
	if out.saveErr != nil {
		t.Fatalf("logout whose delete was repeated: %v", out.saveErr)
	}
	if n := rows(t, admin, "true"); n != 0 {
		t.Errorf("%d session rows after logout, want 0", n)
	}
}
