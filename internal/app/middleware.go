package app

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"outrigger/internal/app/pgretry"
	"outrigger/internal/logging"
)

// withInstance sets X-Instance on every response and, once the server is
// draining, Connection: close, so that the load balancer never reuses a
// connection this server is about to close.
func withInstance(instance string, ready *Readiness, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Instance", instance)
		if ready.Draining() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// withDBBudget gives every request a database budget of d: all its database
// calls together wait at most that long (DB_RETRY_TIMEOUT), then it answers 503.
func withDBBudget(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(pgretry.WithBudget(r.Context(), d)))
	})
}

// recoverPanics turns a handler's panic into a logged JSON 500 (with the
// X-Instance set before it), instead of a connection closed without an
// answer. A panic after the response started, or http.ErrAbortHandler, goes
// on to net/http, which aborts the response.
func recoverPanics(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &startedWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler || sw.started {
				panic(p)
			}
			logger.LogAttrs(r.Context(), slog.LevelError, "handler panic",
				slog.String("request_id", requestID(r)), slog.Any("panic", p),
				slog.String("stack", string(debug.Stack())))
			h := w.Header()
			for k := range h {
				if k != "X-Instance" && k != "X-Request-Id" && k != "Connection" {
					h.Del(k)
				}
			}
			writeError(w, http.StatusInternalServerError, "internal error")
		}()
		next.ServeHTTP(sw, r)
	})
}

// startedWriter records whether the response has started (status or bytes sent).
type startedWriter struct {
	http.ResponseWriter
	started bool
}

func (s *startedWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		s.started = true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *startedWriter) Write(p []byte) (int, error) {
	s.started = true
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *startedWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// crossOriginProtection refuses cross-site unsafe requests (API and pages alike)
// with a JSON 403.
func crossOriginProtection(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
	}))
	return cop.Handler(next)
}

// healthNote carries, from /healthz to the request log, whether the check's
// result is the same as the previous one's.
type healthNote struct{ unchanged atomic.Bool }

type healthNoteKey struct{}

// withHealthNote gives /healthz requests a healthNote; it must wrap the
// logging middleware so that the log's skip function can read the note.
func withHealthNote(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			r = r.WithContext(context.WithValue(r.Context(), healthNoteKey{}, new(healthNote)))
		}
		next.ServeHTTP(w, r)
	})
}

// noteHealth records in r's healthNote whether status repeats the previous result.
func noteHealth(r *http.Request, last *atomic.Value, status string) {
	prev, _ := last.Swap(status).(string)
	if n, ok := r.Context().Value(healthNoteKey{}).(*healthNote); ok {
		n.unchanged.Store(prev == status)
	}
}

// skipUnchangedHealth leaves out of the request log the health checks whose
// result did not change.
func skipUnchangedHealth() logging.MiddlewareOption {
	return logging.SkipIf(func(r *http.Request, status int) bool {
		n, ok := r.Context().Value(healthNoteKey{}).(*healthNote)
		return ok && n.unchanged.Load()
	})
}

// requestID is the request's id as the logging middleware set it.
func requestID(r *http.Request) string {
	if id := logging.RequestID(r.Context()); id != "" {
		return id
	}
	return r.Header.Get("X-Request-ID")
}
