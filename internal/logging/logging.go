// Package logging sets up log/slog for lb and app: tint's coloured lines on a
// terminal, JSON lines otherwise (journald, files, CI), and a request-log
// middleware that writes one line per request.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
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
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
