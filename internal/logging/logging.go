// Package logging sets up log/slog for lb and app: tint's coloured lines on a
// terminal, JSON lines otherwise (journald, files, CI), and the access log:
// a middleware that writes one line per request, and RequestLog, which writes
// the same line for servers that do without net/http.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/lmittmann/tint"
	"golang.org/x/term"
)

// Options choose the log format and level.
type Options struct {
	// Format is auto (tint on a terminal, else JSON), text (tint) or json.
	Format string
	// Level is the minimum level logged; nil means Info.
	Level slog.Leveler
	// NoColor turns colours off in text output (set it when NO_COLOR is set).
	NoColor bool
}

// ValidFormat reports whether s is a format New accepts ("" counts as auto).
func ValidFormat(s string) bool {
	switch s {
	case "", "auto", "text", "json":
		return true
	}
	return false
}

// New returns a logger writing to w in the chosen format.
func New(w io.Writer, opts Options) (*slog.Logger, error) {
	level := opts.Level
	if level == nil {
		level = slog.LevelInfo
	}
	format := opts.Format
	switch format {
	case "", "auto":
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	case "text", "json":
	default:
		return nil, fmt.Errorf("log format %q: want auto, text or json", opts.Format)
	}
	if format == "text" {
		return slog.New(tint.NewTextHandler(w, &tint.Options{
			Level:      level,
			TimeFormat: time.TimeOnly + ".000",
			NoColor:    opts.NoColor || !isTerminal(w),
		})), nil
	}
	// RequestLog writes its lines to the same writer as the handler, so both
	// go through one lock.
	lw := &lockedWriter{w: w}
	return slog.New(&jsonHandler{JSONHandler: slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: level}), w: lw}), nil
}

// jsonHandler is the handler of New's JSON loggers: a plain *slog.JSONHandler
// that also lets RequestLog find its writer. Loggers derived with With or
// WithGroup get the bare JSONHandler back, and RequestLog falls back to slog
// for them.
type jsonHandler struct {
	*slog.JSONHandler
	w *lockedWriter
}

// lockedWriter serialises the writes of the slog handler and RequestLog, for
// writers such as bytes.Buffer that are not safe for concurrent use.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
