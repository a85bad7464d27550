package fleet

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
)

// ringLines is how many recent lines each process keeps in memory for Tail.
const ringLines = 2000

// maxLine caps one log line; longer lines are cut (the file keeps them whole).
const maxLine = 64 << 10

// Line is one line a process wrote to stdout or stderr.
type Line struct {
	Proc   string         // the process that wrote it: "lb", "app-1", ...
	Text   string         // the raw line, without the newline
	Fields map[string]any // the line decoded as a JSON object; nil when it is not one
}

// Str returns field key of a JSON line as a string ("" when absent); numbers and
// booleans are formatted, so Str("status") gives "200".
func (l Line) Str(key string) string {
	v, ok := l.Fields[key]
	if !ok || v == nil {
		return ""
	}
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
}

// Msg returns the line's "msg" field.
func (l Line) Msg() string { return l.Str("msg") }

// parseLine decodes text as a JSON object when it looks like one.
func parseLine(proc, text string) Line {
	l := Line{Proc: proc, Text: text}
	if len(text) > 0 && text[0] == '{' {
		var m map[string]any
		if json.Unmarshal([]byte(text), &m) == nil {
			l.Fields = m
		}
	}
	return l
}

// Log is the captured output of one process: every line goes to a file (kept whole,
// across restarts) and the most recent ones to an in-memory ring.
type Log struct {
	proc string
	path string

	mu   sync.Mutex
	file *os.File
	ring []string
	next int
	full bool
}

// newLog creates (truncates) the log file at path.
func newLog(proc, path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create log of %s: %w", proc, err)
	}
	return &Log{proc: proc, path: path, file: f, ring: make([]string, ringLines)}, nil
}

// Path is the log file's path.
func (l *Log) Path() string { return l.path }

// add records one line.
func (l *Log) add(line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		// A failed write only loses log text; the ring still has it.
		buf := make([]byte, 0, len(line)+1)
		_, _ = l.file.Write(append(append(buf, line...), '\n'))
	}
	if len(line) > maxLine {
		line = line[:maxLine]
	}
	l.ring[l.next] = string(line)
	l.next = (l.next + 1) % len(l.ring)
	if l.next == 0 {
		l.full = true
	}
}

// Note writes a line of the fleet's own (a marker such as "fleet: restarted") into the log.
func (l *Log) Note(format string, args ...any) {
	l.add([]byte("fleet: " + fmt.Sprintf(format, args...)))
}

// Tail returns up to the n most recent lines, oldest first.
func (l *Log) Tail(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var all []string
	if l.full {
		all = append(all, l.ring[l.next:]...)
	}
	all = append(all, l.ring[:l.next]...)
	if n >= 0 && len(all) > n {
		all = all[len(all)-n:]
	}
	return all
}

// Lines reads every line written so far from the log file, parsed.
func (l *Log) Lines() ([]Line, error) {
	l.mu.Lock()
	if l.file != nil {
		// Make sure the file has everything written so far.
		_ = l.file.Sync()
	}
	l.mu.Unlock()
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("read log of %s: %w", l.proc, err)
	}
	defer f.Close()
	var out []Line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		out = append(out, parseLine(l.proc, sc.Text()))
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read log of %s: %w", l.proc, err)
	}
	return out, nil
}

// close closes the log file; later lines go to the ring only.
func (l *Log) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	return err
}

// lineWriter splits what a process writes into lines and hands each to fn.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func([]byte)
}

var _ io.Writer = (*lineWriter)(nil)

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.fn(bytes.TrimRight(w.buf[:i], "\r"))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 4*maxLine { // a runaway line without newline: flush it as is
		w.fn(w.buf)
		w.buf = nil
	}
	return len(p), nil
}

// flush hands on a last line that had no newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.fn(w.buf)
		w.buf = nil
	}
}
