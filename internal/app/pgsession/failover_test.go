package pgsession

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/jackc/pgx/v5/pgxpool"

	"outrigger/internal/app/pgretry"
	"outrigger/internal/app/store"
	"outrigger/internal/pgtest"
)

// TestLostAcksLeaveOneSession: the replies to a new session's insert, and to a logout's
// delete, are lost after the server committed them: each write is repeated on a new
// connection, the login leaves exactly one row and a working cookie, the logout none.
func TestLostAcksLeaveOneSession(t *testing.T) {
	s, px, admin := proxiedStore(t, 5*time.Second)
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

// proxiedStore is a Store with a database budget of budget whose connections go through a
// pgtest.Proxy, and an admin pool on the same (migrated) database that does not.
func proxiedStore(t *testing.T, budget time.Duration) (*Store, *pgtest.Proxy, *pgxpool.Pool) {
	t.Helper()
	cl := pgtest.TCPCluster(t, pgtest.ClusterOptions{})
	admin := pgtest.OpenPool(t, cl.DSN("postgres"), nil, store.Migrate)
	px := pgtest.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", cl.Port()))
	pool := pgtest.OpenPool(t, px.DSN(cl.DSN("postgres")), pgretry.ConfigurePool, nil)
	s, err := New(pgretry.New(pool, pgretry.Options{Budget: budget}), []string{secret1}, Options{Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	return s, px, admin
}

// TestFailedLoginKeepsOldSession: a login renews the session id; when storing the new session
// fails (every insert's reply lost until the budget is spent: the insert itself may have
// committed), the old session's row was not deleted (it goes only once the new one is
// stored): the old cookie still works, and no cookie was sent.
func TestFailedLoginKeepsOldSession(t *testing.T) {
	s, px, admin := proxiedStore(t, time.Second)
	old := login(t, s, 1)
	px.LoseReplies(func(tag string) bool { return strings.HasPrefix(tag, "INSERT") })
	res := request(t, s, []*http.Cookie{old}, func(r *http.Request, sess *sessions.Session) bool {
		s.RenewID(r, sess)
		sess.Values["user_id"] = int64(2)
		return true
	})
	px.LoseReplies(nil)
	if res.saveErr == nil {
		t.Fatal("the login's Save succeeded with every insert's reply lost")
	}
	if len(res.cookies) != 0 {
		t.Errorf("failed login sent cookies %v, want none", res.cookies)
	}
	if got := request(t, s, []*http.Cookie{old}, nil); got.getErr != nil || got.sess.Values["user_id"] != int64(1) {
		t.Errorf("the old session after the failed login: %v %v, want user 1 still logged in", got.sess.Values, got.getErr)
	}
	// The new row, whose insert committed with its reply lost, was never handed out and
	// expires on its own.
	if n := rows(t, admin, "true"); n < 1 || n > 2 {
		t.Errorf("%d session rows, want the old one (and at most the orphaned new one)", n)
	}
}

// TestLoginNeverLogsOut: a login (a renewed id) while every reply to the statement that
// commits it is lost (the write lands, the client is not told): whatever the login's
// outcome, the client is still logged in, with the new cookie if one was sent, else with
// its old one. Deleting the old row in the new row's transaction failed this when the
// COMMIT's reply was lost: the old row was gone and the failed login left only its cookie.
func TestLoginNeverLogsOut(t *testing.T) {
	for _, tag := range []string{"INSERT", "COMMIT"} {
		t.Run(tag, func(t *testing.T) {
			s, px, _ := proxiedStore(t, time.Second)
			old := login(t, s, 1)
			px.LoseReplies(func(got string) bool { return strings.HasPrefix(got, tag) })
			res := request(t, s, []*http.Cookie{old}, func(r *http.Request, sess *sessions.Session) bool {
				s.RenewID(r, sess)
				sess.Values["user_id"] = int64(1)
				return true
			})
			px.LoseReplies(nil)
			kept := []*http.Cookie{old}
			if res.saveErr == nil {
				if len(res.cookies) == 0 {
					t.Fatal("the login succeeded without a cookie")
				}
				kept = res.cookies
			}
			if got := request(t, s, kept, nil); got.getErr != nil || got.sess.Values["user_id"] != int64(1) {
				t.Errorf("after the login (error %v): %v %v, want user 1 still logged in", res.saveErr, got.sess.Values, got.getErr)
			}
		})
	}
}
