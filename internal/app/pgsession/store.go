// Package pgsession is a gorilla/sessions Store that keeps sessions in PostgreSQL (pgx).
//
// The cookie carries only the session id (32 random bytes), signed and encrypted; the row is
// keyed by sha256(id), so the table alone does not let anyone take over a session. Values are
// gob-encoded, then signed and encrypted with the same rotating keys. Sessions without values
// are never stored. Expiry slides, written at most once per MaxAge/10. Every statement goes
// through pgretry (a deadline, retries while the database fails over) and is safe to repeat:
// a new session is an upsert on sha256 of a fresh random id, an expiry slide an update, a
// logout a delete. The table is the "sessions" table of internal/app/store's migrations:
//
//	sessions(key bytea PRIMARY KEY, data bytea, created_at, modified_at, expires_at timestamptz)
package pgsession

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/jackc/pgx/v5"

	"outrigger/internal/app/pgretry"
)

const (
	// MinSecretLen is the fewest characters a secret may have.
	MinSecretLen = 32
	// DefaultMaxAge is the session lifetime when Options.MaxAge is 0.
	DefaultMaxAge = 720 * time.Hour
	// SecureCookieName is the cookie name when Options.Secure is set.
	SecureCookieName = "__Host-session"
	// PlainCookieName is the cookie name when Options.Secure is not set.
	PlainCookieName = "session"

	idLen = 32 // random bytes in a session id
)

// Options configures a Store.
type Options struct {
	// MaxAge is how long a session lives after its last write (and the cookie's Max-Age).
	// 0 means DefaultMaxAge.
	MaxAge time.Duration
	// Secure marks the cookie Secure and names it with the __Host- prefix. Set it from
	// COOKIE_SECURE (default true); false only for plain-HTTP local use.
	Secure bool
	// CookieName overrides the cookie name (SecureCookieName or PlainCookieName). A name
	// starting with __Host- or __Secure- needs Secure.
	CookieName string
	// Logger receives Cleanup's errors and counts; nil discards them.
	Logger *slog.Logger
}

// Store is a sessions.Store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	db           *pgretry.DB
	cookieCodecs []securecookie.Codec // encode the id into the cookie
	dataCodecs   []securecookie.Codec // encode the values into the row
	name         string
	maxAge       time.Duration
	slide        time.Duration // a row is rewritten with unchanged values only after this long
	secure       bool
	logger       *slog.Logger
}

var _ sessions.Store = (*Store)(nil)

// New returns a Store on db. secrets must have at least one entry; each has at least
// MinSecretLen characters and no two are equal. Keys are derived from each secret by
// HKDF-SHA256; the first secret signs and encrypts, the others only verify and decrypt
// (rotation: put the new secret first, drop the old one after MaxAge).
func New(db *pgretry.DB, secrets []string, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("pgsession: nil database")
	}
	if len(secrets) == 0 {
		return nil, errors.New("pgsession: no session secret")
	}
	seen := make(map[string]int, len(secrets))
	var cookiePairs, dataPairs [][]byte
	for i, sec := range secrets {
		if n := utf8.RuneCountInString(sec); n < MinSecretLen {
			return nil, fmt.Errorf("pgsession: secret %d has %d characters, want at least %d", i+1, n, MinSecretLen)
		}
		if j, dup := seen[sec]; dup {
			return nil, fmt.Errorf("pgsession: secrets %d and %d are the same", j+1, i+1)
		}
		seen[sec] = i
		keys, err := deriveKeys([]byte(sec))
		if err != nil {
			return nil, err
		}
		cookiePairs = append(cookiePairs, keys[0], keys[1])
		dataPairs = append(dataPairs, keys[2], keys[3])
	}
	if opts.MaxAge < 0 {
		return nil, fmt.Errorf("pgsession: MaxAge %v, want >= 0", opts.MaxAge)
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.MaxAge < time.Second {
		return nil, fmt.Errorf("pgsession: MaxAge %v, want at least 1s", opts.MaxAge)
	}
	name := opts.CookieName
	switch {
	case name == "" && opts.Secure:
		name = SecureCookieName
	case name == "":
		name = PlainCookieName
	case !opts.Secure && (strings.HasPrefix(name, "__Host-") || strings.HasPrefix(name, "__Secure-")):
		return nil, fmt.Errorf("pgsession: cookie name %q needs Secure", name)
	}
	s := &Store{
		db:           db,
		cookieCodecs: securecookie.CodecsFromPairs(cookiePairs...),
		dataCodecs:   securecookie.CodecsFromPairs(dataPairs...),
		name:         name,
		maxAge:       opts.MaxAge,
		slide:        opts.MaxAge / 10,
		secure:       opts.Secure,
		logger:       opts.Logger,
	}
	for _, c := range s.cookieCodecs {
		c.(*securecookie.SecureCookie).MaxAge(int(opts.MaxAge / time.Second)).SetSerializer(securecookie.NopEncoder{})
	}
	for _, c := range s.dataCodecs {
		// Expiry is the row's expires_at; MaxLength 0: values may exceed a cookie's 4 KiB.
		c.(*securecookie.SecureCookie).MaxAge(0).MaxLength(0).SetSerializer(securecookie.NopEncoder{})
	}
	return s, nil
}

// deriveKeys returns the cookie hash and block keys and the data hash and block keys.
func deriveKeys(secret []byte) ([4][]byte, error) {
	var keys [4][]byte
	for i, info := range []string{"cookie hmac", "cookie aes", "data hmac", "data aes"} {
		k, err := hkdf.Key(sha256.New, secret, []byte("outrigger pgsession v1"), info, 32)
		if err != nil {
			return keys, fmt.Errorf("pgsession: derive %s key: %w", info, err)
		}
		keys[i] = k
	}
	return keys, nil
}

// Name is the session cookie's name: pass it to Get.
func (s *Store) Name() string { return s.name }

// MaxAge is the sessions' lifetime after their last write.
func (s *Store) MaxAge() time.Duration { return s.maxAge }

// options are the cookie options of a new session.
func (s *Store) options() *sessions.Options {
	return &sessions.Options{
		Path:     "/",
		MaxAge:   int(s.maxAge / time.Second),
		Secure:   s.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// Get returns the session of this request for name (Name()), cached for the request by
// gorilla's registry. See New for the errors.
func (s *Store) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, name)
}

// loaded is what New read from the database, kept in the request's context so that Save can
// skip rewriting a row whose values did not change.
type loaded struct {
	sess       *sessions.Session
	id         string
	plain      []byte // gob of the values as stored
	modifiedAt time.Time
}

type loadedKey struct {
	store *Store
	name  string
}

// setLoaded records l in r's context (r is updated in place, as gorilla's registry does).
func (s *Store) setLoaded(r *http.Request, name string, l *loaded) {
	*r = *r.WithContext(context.WithValue(r.Context(), loadedKey{s, name}, l))
}

func (s *Store) getLoaded(r *http.Request, sess *sessions.Session) *loaded {
	l, _ := r.Context().Value(loadedKey{s, sess.Name()}).(*loaded)
	if l == nil || l.sess != sess || l.id != sess.ID {
		return nil
	}
	return l
}

// New returns the session named by the request's cookie, or a new empty session (IsNew,
// ID "") when there is no cookie, the cookie does not verify or decrypt (tampered, or made
// with a retired key), or the session expired or was deleted. Those cases are not errors.
// An error means the database failed: the session returned is then a new empty one, and the
// caller should answer 503 and leave the cookie alone (not Save).
func (s *Store) New(r *http.Request, name string) (*sessions.Session, error) {
	sess := sessions.NewSession(s, name)
	sess.Options = s.options()
	sess.IsNew = true
	c, err := r.Cookie(name)
	if err != nil {
		return sess, nil
	}
	var rawID []byte
	if err := securecookie.DecodeMulti(name, c.Value, &rawID, s.cookieCodecs...); err != nil || len(rawID) != idLen {
		return sess, nil
	}
	id := base64.RawURLEncoding.EncodeToString(rawID)
	key := rowKey(id)
	var data []byte
	var modifiedAt time.Time
	err = s.db.Do(r.Context(), func(ctx context.Context, q pgretry.Querier) error {
		return q.QueryRow(ctx,
			"SELECT data, modified_at FROM sessions WHERE key = $1 AND expires_at > now()", key).
			Scan(&data, &modifiedAt)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return sess, nil
	}
	if err != nil {
		return sess, fmt.Errorf("load session: %w", err)
	}
	var plain []byte
	if err := securecookie.DecodeMulti(dataName(key), string(data), &plain, s.dataCodecs...); err != nil {
		return sess, nil // written with a retired key
	}
	values, err := decodeValues(plain)
	if err != nil {
		return sess, nil // a type this binary does not know
	}
	sess.ID, sess.Values, sess.IsNew = id, values, false
	s.setLoaded(r, name, &loaded{sess: sess, id: id, plain: plain, modifiedAt: modifiedAt})
	return sess, nil
}

// Save writes the session and sets its cookie.
//
//   - Options.MaxAge < 0, or no values: the row is deleted and the cookie expired (logout).
//     A session that was never stored stays unstored.
//   - A loaded session whose values did not change is rewritten (sliding its expiry and
//     re-sending the cookie) only once MaxAge/10 has passed since its last write.
//   - A session deleted meanwhile (logout elsewhere) is not brought back: its cookie is
//     expired instead.
//
// An error means the database failed; the cookie is then left alone.
func (s *Store) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	ctx := r.Context()
	if sess.Options == nil {
		sess.Options = s.options()
	}
	if sess.Options.MaxAge < 0 || len(sess.Values) == 0 {
		return s.remove(r, w, sess)
	}
	plain, err := encodeValues(sess.Values)
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	ttl := s.maxAge
	if sess.Options.MaxAge > 0 {
		ttl = time.Duration(sess.Options.MaxAge) * time.Second
	}
	l := s.getLoaded(r, sess)
	if l != nil && time.Since(l.modifiedAt) < s.slide && sameValues(l.plain, plain, sess.Values) {
		return nil
	}

	var rawID []byte
	var modifiedAt time.Time
	switch {
	case sess.ID == "":
		rawID = make([]byte, idLen)
		rand.Read(rawID)
		id := base64.RawURLEncoding.EncodeToString(rawID)
		key := rowKey(id)
		data, err := securecookie.EncodeMulti(dataName(key), plain, s.dataCodecs...)
		if err != nil {
			return fmt.Errorf("save session: encode: %w", err)
		}
		// An upsert: the key is new (a fresh random id), so a conflict is this same
		// write repeated after its acknowledgement was lost.
		err = s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
			return q.QueryRow(ctx, `INSERT INTO sessions (key, data, expires_at)
				VALUES ($1, $2, now() + $3::interval)
				ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, modified_at = now(), expires_at = EXCLUDED.expires_at
				RETURNING modified_at`, key, []byte(data), ttl).Scan(&modifiedAt)
		})
		if err != nil {
			return fmt.Errorf("save new session: %w", err)
		}
		// A renewed session's old row goes once the new one is stored, not in the same
		// transaction: a commit whose acknowledgement the database never sent (it went
		// away meanwhile) would otherwise delete the row of the cookie the client keeps
		// when the login fails, and log it out. If this delete fails, the new session
		// stands and the old row expires on its own.
		if oldKey := s.renewedFrom(r, sess); oldKey != nil {
			if err := s.deleteKey(ctx, oldKey); err != nil && s.logger != nil {
				s.logger.Warn("session renewed; its old row is left to expire", "err", err.Error())
			}
		}
		sess.ID = id
	default:
		rawID, err = base64.RawURLEncoding.DecodeString(sess.ID)
		if err != nil || len(rawID) != idLen {
			return fmt.Errorf("save session: malformed session id")
		}
		key := rowKey(sess.ID)
		data, err := securecookie.EncodeMulti(dataName(key), plain, s.dataCodecs...)
		if err != nil {
			return fmt.Errorf("save session: encode: %w", err)
		}
		err = s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
			return q.QueryRow(ctx, `UPDATE sessions SET data = $2, modified_at = now(), expires_at = now() + $3::interval
				WHERE key = $1 AND expires_at > now() RETURNING modified_at`, key, []byte(data), ttl).Scan(&modifiedAt)
		})
		if errors.Is(err, pgx.ErrNoRows) {
			// Deleted or expired since it was loaded: do not resurrect it.
			sess.ID, sess.IsNew = "", true
			http.SetCookie(w, s.expiredCookie(sess))
			return nil
		}
		if err != nil {
			return fmt.Errorf("save session: %w", err)
		}
	}
	encoded, err := securecookie.EncodeMulti(sess.Name(), rawID, s.cookieCodecs...)
	if err != nil {
		return fmt.Errorf("save session: encode cookie: %w", err)
	}
	http.SetCookie(w, sessions.NewCookie(sess.Name(), encoded, sess.Options))
	s.setLoaded(r, sess.Name(), &loaded{sess: sess, id: sess.ID, plain: plain, modifiedAt: modifiedAt})
	return nil
}

// remove deletes the session's row (if stored) and expires its cookie (if the request had one
// or the session was stored).
func (s *Store) remove(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	_, cerr := r.Cookie(sess.Name())
	hadCookie, stored := cerr == nil, sess.ID != ""
	if old := s.renewedFrom(r, sess); old != nil {
		if err := s.deleteKey(r.Context(), old); err != nil {
			return fmt.Errorf("delete session: %w", err)
		}
	}
	if stored {
		if err := s.deleteKey(r.Context(), rowKey(sess.ID)); err != nil {
			return fmt.Errorf("delete session: %w", err)
		}
		sess.ID = ""
	}
	if stored || hadCookie {
		http.SetCookie(w, s.expiredCookie(sess))
	}
	return nil
}

func (s *Store) expiredCookie(sess *sessions.Session) *http.Cookie {
	opts := *sess.Options
	opts.MaxAge = -1
	return sessions.NewCookie(sess.Name(), "", &opts)
}

func (s *Store) deleteKey(ctx context.Context, key []byte) error {
	return s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
		_, err := q.Exec(ctx, "DELETE FROM sessions WHERE key = $1", key)
		return err
	})
}

// RenewID clears the session's ID, so that the next Save stores the values under a new id
// and sends a new cookie, and then deletes the old row (r carries the old id to that Save).
// Call it at login, before setting the user, against session fixation. The values stay. If
// that Save fails (the database is away), the old session is left as it was: a login that
// fails logs nobody out.
func (s *Store) RenewID(r *http.Request, sess *sessions.Session) {
	if sess.ID != "" {
		*r = *r.WithContext(context.WithValue(r.Context(), renewedKey{s, sess.Name()}, renewed{sess, rowKey(sess.ID)}))
	}
	sess.ID, sess.IsNew = "", true
}

// renewed is the row key a session had before RenewID, kept in the request's context.
type renewed struct {
	sess   *sessions.Session
	oldKey []byte
}

type renewedKey struct {
	store *Store
	name  string
}

// renewedFrom returns the row key sess had before RenewID in this request, or nil.
func (s *Store) renewedFrom(r *http.Request, sess *sessions.Session) []byte {
	rn, _ := r.Context().Value(renewedKey{s, sess.Name()}).(renewed)
	if rn.sess != sess {
		return nil
	}
	return rn.oldKey
}

// rowKey is the primary key of a session's row: sha256 of its id.
func rowKey(id string) []byte {
	k := sha256.Sum256([]byte(id))
	return k[:]
}

// dataName binds a row's encoded values to its key, so rows cannot be swapped.
func dataName(key []byte) string { return "session " + hex.EncodeToString(key) }

func encodeValues(v map[any]any) ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(v); err != nil {
		return nil, fmt.Errorf("gob-encode session values (gob.Register custom types): %w", err)
	}
	return b.Bytes(), nil
}

func decodeValues(b []byte) (map[any]any, error) {
	v := make(map[any]any)
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// sameValues reports whether values (whose gob is plain) equal the stored ones (oldPlain).
// Gob writes map entries in random order, so unequal bytes are checked by decoding.
func sameValues(oldPlain, plain []byte, values map[any]any) bool {
	if bytes.Equal(oldPlain, plain) {
		return true
	}
	old, err := decodeValues(oldPlain)
	return err == nil && reflect.DeepEqual(old, values)
}
