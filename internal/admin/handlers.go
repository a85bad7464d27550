package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"outrigger/internal/balancer"
)

// toBackend converts the pool's view of a backend to the wire type.
func toBackend(st balancer.Status) Backend {
	return Backend{
		Name:       st.Name,
		URL:        st.URL,
		State:      st.State.String(),
		Healthy:    st.Healthy,
		InFlight:   st.InFlight,
		Upgraded:   st.Upgraded,
		ChecksOK:   st.ChecksOK,
		LastCheck:  st.LastCheck.UTC(),
		LastError:  st.LastError,
		Version:    st.Version,
		Requests:   st.Requests,
		Failures:   st.Failures,
		LastChange: st.LastChange.UTC(),
	}
}

func (s *server) handleList() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		snap := s.pool.Snapshot()
		out := make([]Backend, 0, len(snap))
		for _, st := range snap {
			out = append(out, toBackend(st))
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func (s *server) handleGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := s.pool.Get(r.PathValue("name"))
		if err != nil {
			s.writePoolError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, toBackend(st))
	})
}

func (s *server) handleAdd() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in addRequest
		if !decodeJSON(w, r, &in) {
			return
		}
		st, err := s.pool.Add(in.Name, in.URL)
		if err != nil {
			s.writePoolError(w, err)
			return
		}
		s.logger.Info("admin: backend added", "backend", st.Name, "url", st.URL,
			"change", "added (runtime overlay until the next reload)", "remote", r.RemoteAddr)
		s.changed()
		w.Header().Set("Location", "/api/backends/"+url.PathEscape(st.Name))
		writeJSON(w, http.StatusCreated, toBackend(st))
	})
}

func (s *server) handleDrain() http.Handler {
	return s.handleStateChange("drained", s.pool.Drain, func(st balancer.Status) []any {
		return []any{"in_flight", st.InFlight}
	})
}

func (s *server) handleEnable() http.Handler {
	return s.handleStateChange("enabled", s.pool.Enable, func(st balancer.Status) []any {
		return []any{"healthy", st.Healthy}
	})
}

// handleStateChange serves drain and enable: op changes the named backend's
// state, and the log line says what it was, what it is, and extra attributes.
func (s *server) handleStateChange(verb string, op func(name string) (balancer.Status, error),
	extra func(balancer.Status) []any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		before, err := s.pool.Get(name)
		if err != nil {
			s.writePoolError(w, err)
			return
		}
		st, err := op(name)
		if err != nil {
			s.writePoolError(w, err)
			return
		}
		attrs := []any{"backend", name, "from", before.State.String(), "to", st.State.String(),
			"changed", before.State != st.State}
		attrs = append(append(attrs, extra(st)...), "remote", r.RemoteAddr)
		s.logger.Info("admin: backend "+verb, attrs...)
		s.changed()
		writeJSON(w, http.StatusOK, toBackend(st))
	})
}

func (s *server) handleRemove() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		before, err := s.pool.Get(name)
		if err != nil {
			s.writePoolError(w, err)
			return
		}
		start := time.Now()
		// The removal goes on if the caller hangs up: a half-done drain would
		// leave the backend out of rotation without anyone knowing.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.opts.DrainTimeout())
		defer cancel()
		if _, err := s.pool.Drain(name); err != nil {
			s.writePoolError(w, err)
			return
		}
		waitErr := s.pool.WaitIdle(ctx, name)
		var cut int64
		if waitErr != nil {
			if st, err := s.pool.Get(name); err == nil {
				cut = st.InFlight + st.Upgraded
			}
		}
		if err := s.pool.Remove(ctx, name); err != nil {
			s.writePoolError(w, err)
			return
		}
		s.logger.Info("admin: backend removed", "backend", name, "url", before.URL,
			"from", before.State.String(), "waited", time.Since(start).Seconds(),
			"drain_timed_out", waitErr != nil, "cut", cut, "remote", r.RemoteAddr)
		if s.opts.OnRemove != nil {
			s.opts.OnRemove(name)
		}
		s.changed()
		writeJSON(w, http.StatusOK, toBackend(before))
	})
}

func (s *server) handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.opts.Version})
	})
}

// writePoolError maps the pool's sentinel errors to statuses.
func (s *server) writePoolError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, balancer.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such backend")
	case errors.Is(err, balancer.ErrExists):
		writeError(w, http.StatusConflict, "a backend with that name exists")
	case errors.Is(err, balancer.ErrInvalid):
		// ErrInvalid's text names the bad field and the rule, nothing internal.
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.logger.Error("admin: pool operation failed", "error", err.Error())
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// decodeJSON reads a bounded JSON body into v; on failure it answers and returns false.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid JSON body: want {\"name\",\"url\"}")
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "invalid JSON body: trailing data")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}
