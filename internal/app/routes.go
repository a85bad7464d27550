package app

import (
	"log/slog"
	"net/http"
	"strings"

	"outrigger/internal/app/pgsession"
	"outrigger/internal/app/store"
	"outrigger/internal/clientip"
)

// addRoutes lists the app's whole HTTP surface (DESIGN's route table, then
// the pages for people).
func addRoutes(mux *http.ServeMux, cfg Config, logger *slog.Logger, ips *clientip.Resolver,
	st *store.Store, sess *pgsession.Store, ready *Readiness, acc *accounts) {
	ss := newSessionStore(sess)
	tr := newSlots(cfg.MaxTransfers, cfg.TransferWait)
	pg := newPages(cfg, logger)

	mux.Handle("GET /healthz", handleHealthz(cfg, ready, st.Ping))

	mux.Handle("POST /api/signup", handleSignup(logger, acc))
	mux.Handle("POST /api/login", handleLogin(logger, ips, acc, ss))
	mux.Handle("POST /api/logout", handleLogout(logger, ss))
	mux.Handle("GET /api/me", handleMe(cfg, logger, ss))
	mux.Handle("POST /api/files", handleUpload(cfg, logger, st, ss, tr))
	mux.Handle("GET /api/files", handleListFiles(logger, st, ss))
	mux.Handle("GET /api/files/{id}", handleDownload(cfg, logger, st, ss, tr))

	mux.Handle("GET /{$}", handlePageIndex(pg, st, ss))
	mux.Handle("POST /signup", handlePageSignup(pg, acc, ss))
	mux.Handle("POST /login", handlePageLogin(pg, ips, acc, ss))
	mux.Handle("POST /logout", handlePageLogout(pg, ss))
	mux.Handle("POST /upload", handlePageUpload(cfg, pg, st, ss, tr))
}

// jsonMuxErrors makes the mux's own 404 and 405 answers under /api/ JSON
// errors like every other API answer (the Allow header of a 405 is kept).
func jsonMuxErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			if _, pattern := mux.Handler(r); pattern == "" {
				w = &jsonErrorWriter{ResponseWriter: w}
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// jsonErrorWriter replaces a plain-text 404 or 405 with {"error": ...}.
type jsonErrorWriter struct {
	http.ResponseWriter
	replaced bool
}

func (j *jsonErrorWriter) WriteHeader(code int) {
	if code == http.StatusNotFound || code == http.StatusMethodNotAllowed {
		j.replaced = true
		writeError(j.ResponseWriter, code, strings.ToLower(http.StatusText(code)))
		return
	}
	j.ResponseWriter.WriteHeader(code)
}

func (j *jsonErrorWriter) Write(p []byte) (int, error) {
	if j.replaced {
		return len(p), nil
	}
	return j.ResponseWriter.Write(p)
}
