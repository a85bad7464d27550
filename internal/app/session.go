package app

import (
	"log/slog"
	"net/http"

	"outrigger/internal/app/pgsession"
	"outrigger/internal/app/store"
)

// Session values.
const (
	sessUserID   = "uid"
	sessUsername = "username"
)

// sessionStore is the app's view of sessions: who is logged in, log in, log out.
type sessionStore struct {
	s *pgsession.Store
}

func newSessionStore(s *pgsession.Store) *sessionStore { return &sessionStore{s: s} }

// current returns the logged-in user of r (ok false if nobody). It slides the
// session's expiry (pgsession writes at most once per MaxAge/10). An error is
// a database failure: answer 503, and the cookie stays as it is.
func (ss *sessionStore) current(w http.ResponseWriter, r *http.Request) (user store.User, ok bool, err error) {
	sess, err := ss.s.Get(r, ss.s.Name())
	if err != nil {
		return store.User{}, false, err
	}
	id, ok1 := sess.Values[sessUserID].(int64)
	name, ok2 := sess.Values[sessUsername].(string)
	if sess.IsNew || !ok1 || !ok2 {
		return store.User{}, false, nil
	}
	if err := ss.s.Save(r, w, sess); err != nil {
		return store.User{}, false, err
	}
	if sess.ID == "" { // logged out elsewhere meanwhile
		return store.User{}, false, nil
	}
	return store.User{ID: id, Username: name}, true, nil
}

// start logs user in with a new session id (the old session, if any, is
// deleted once the new one is stored, so a failure leaves it as it was), and
// sets the cookie.
func (ss *sessionStore) start(w http.ResponseWriter, r *http.Request, user store.User) error {
	sess, err := ss.s.Get(r, ss.s.Name())
	if err != nil {
		return err
	}
	ss.s.RenewID(r, sess) // the old row goes once the new one is stored
	clear(sess.Values)
	sess.Values[sessUserID] = user.ID
	sess.Values[sessUsername] = user.Username
	return ss.s.Save(r, w, sess)
}

// end deletes the session's row and expires the cookie.
func (ss *sessionStore) end(w http.ResponseWriter, r *http.Request) error {
	sess, err := ss.s.Get(r, ss.s.Name())
	if err != nil {
		return err
	}
	sess.Options.MaxAge = -1
	return ss.s.Save(r, w, sess)
}

// require runs h with the logged-in user, or answers 401 (nobody) or 503
// (database failure, the cookie left alone).
func (ss *sessionStore) require(logger *slog.Logger, h func(http.ResponseWriter, *http.Request, store.User)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok, err := ss.current(w, r)
		switch {
		case err != nil:
			unavailable(w, r, logger, "load session", err)
		case !ok:
			writeError(w, http.StatusUnauthorized, "not logged in")
		default:
			h(w, r, user)
		}
	})
}
