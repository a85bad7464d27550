package admin

import (
	"context"
	"net/http"
)

// handleLastReload answers the outcome of the last configuration load.
func (s *server) handleLastReload() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.opts.Reloader.LastReload())
	})
}

// handleReload reloads the configuration as SIGHUP does and answers the
// outcome: 200 when it was applied, 422 with the same object (its error
// naming every problem) when the file was refused and the running config kept.
func (s *server) handleReload() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.logger.Info("admin: reload requested", "remote", r.RemoteAddr)
		// A reload runs to its end even if the caller hangs up: half of one is never applied.
		res := s.opts.Reloader.Reload(context.WithoutCancel(r.Context()))
		status := http.StatusOK
		if !res.OK {
			status = http.StatusUnprocessableEntity
		}
		writeJSON(w, status, res)
	})
}
