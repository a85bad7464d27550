package admin

import (
	"net/http"
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
	api.Handle("/api/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API call")
	}))

	mux := http.NewServeMux()
	mux.Handle("/api/", s.requireToken(api))
	mux.Handle("GET /healthz", s.handleHealthz())
	if s.opts.Metrics != nil {
		mux.Handle("GET /metrics", s.opts.Metrics)
	}
	mux.Handle("GET /{$}", s.handleStatusPage())
	mux.Handle("GET /assets/", s.handleAssets())
	return mux
}
