package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// requireToken answers 401 unless the request carries
// "Authorization: Bearer TOKEN" with the current token, compared in constant time.
func (s *server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tokenOK(r.Header.Get("Authorization"), s.opts.Token()) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lb admin"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tokenOK reports whether header is "Bearer want". Both sides are hashed
// first so that the comparison takes the same time whatever their lengths.
func tokenOK(header, want string) bool {
	scheme, got, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got = strings.TrimSpace(got)
	g := sha256.Sum256([]byte(got))
	w := sha256.Sum256([]byte(want))
	match := subtle.ConstantTimeCompare(g[:], w[:]) == 1
	return match && want != ""
}
