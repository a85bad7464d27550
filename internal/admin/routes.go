package admin

import (
	"net/http"
	"strings"
)

// routes lists the whole admin surface.
func (s *server) routes() http.Handler {
	api := http.NewServeMux()
	api.Handle("GET /api/backends", s.handleList())
	api.Handle("POST /api/backends", s.handleAdd())
	api.Handle("GET /api/backends/{name}", s.handleGet())
	api.Handle("DELETE /api/backends/{name}", s.handleRemove())
	api.Handle("POST /api/backends/{name}/drain", s.handleDrain())
	api.Handle("POST /api/backends/{name}/enable", s.handleEnable())
	api.Handle("GET /api/status", s.handleLBStatus())
	if s.opts.Reloader != nil {
		api.Handle("GET /api/reload", s.handleLastReload())
		api.Handle("POST /api/reload", s.handleReload())
	}
	api.Handle("/api/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow := allowed(r.URL.Path, s.opts.Reloader != nil); allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method not allowed; allowed: "+allow)
			return
		}
		writeError(w, http.StatusNotFound, "no such API call")
	}))

	mux := http.NewServeMux()
	mux.Handle("/api/", s.requireToken(api))
	mux.Handle("GET /healthz", s.handleHealthz())
	mux.Handle("GET /readyz", s.handleReadyz())
	if s.opts.Metrics != nil {
		mux.Handle("GET /metrics", s.opts.Metrics)
	}
	mux.Handle("GET /{$}", s.handleStatusPage())
	mux.Handle("GET /assets/", s.handleAssets())
	return mux
}

// allowed returns the methods of the API route that path names ("" if none);
// reload says whether /api/reload exists.
func allowed(path string, reload bool) string {
	switch {
	case path == "/api/reload" && reload:
		return "GET, POST"
	case path == "/api/status":
		return "GET"
	}
	rest, ok := strings.CutPrefix(path, "/api/backends")
	switch {
	case !ok:
		return ""
	case rest == "":
		return "GET, POST"
	}
	parts := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	switch {
	case !strings.HasPrefix(rest, "/") || parts[0] == "":
		return ""
	case len(parts) == 1:
		return "GET, DELETE"
	case len(parts) == 2 && (parts[1] == "drain" || parts[1] == "enable"):
		return "POST"
	}
	return ""
}
