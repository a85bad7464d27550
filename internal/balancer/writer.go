package balancer

import (
	"bufio"
	"errors"
	"net"
	"net/http"
)

// attemptWriter sits between one attempt's reverse proxy and the client. It notes whether the
// response started (after which nothing may be retried) and whether writing to the client
// failed, and it moves a hijacked (upgraded) connection from in-flight to upgraded.
type attemptWriter struct {
	http.ResponseWriter
	st       *reqState
	b        *Backend
	code     int
	wrote    bool
	writeErr error
}

func (w *attemptWriter) reset(rw http.ResponseWriter, st *reqState, b *Backend) {
	*w = attemptWriter{ResponseWriter: rw, st: st, b: b}
}

// WriteHeader records the final status; informational answers pass through.
func (w *attemptWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if !w.wrote {
		w.wrote, w.code = true, code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write copies response bytes to the client, remembering a failure.
func (w *attemptWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.wrote, w.code = true, http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	if err != nil && w.writeErr == nil {
		w.writeErr = err
	}
	return n, err
}

// FlushError flushes to the client (used by http.ResponseController and streaming).
func (w *attemptWriter) FlushError() error {
	err := http.NewResponseController(w.ResponseWriter).Flush()
	if err != nil && !errors.Is(err, http.ErrNotSupported) && w.writeErr == nil {
		w.writeErr = err
	}
	return err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *attemptWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack takes over the client connection for a protocol upgrade: the request stops counting
// as in flight and the connection counts as upgraded until it is closed.
func (w *attemptWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.wrote, w.code = true, http.StatusSwitchingProtocols
	if !w.st.upgraded {
		w.st.upgraded = true
		w.b.release()
	}
	return w.b.trackUpgraded(c), brw, nil
}
