package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// commandWaitDelay is how long a command gets to exit after SIGTERM, and
// how long Wait waits for output pipes held open by its children (an ssh
// control master, say) after it exited.
const commandWaitDelay = 10 * time.Second

// maxLineBytes bounds one kept output line.
const maxLineBytes = 1024

// runCommand runs the rollout command for one backend (argv, no shell) and
// returns its exit status. On failure it prints the status and the last
// output lines to stderr.
func (r *runner) runCommand(ctx context.Context, t target) (string, error) {
	argv := r.opts.Command
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = commandEnv(r.opts.Env, t)
	// Ctrl-C reaches the command through the terminal anyway. A cancelled
	// context asks it to stop with SIGTERM (SIGINT may be ignored by a command
	// started in the background) and kills it only after a grace period.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = commandWaitDelay
	tail := newTail(r.opts.TailLines)
	var out io.Writer = tail
	if r.opts.CommandOutput != nil {
		out = io.MultiWriter(tail, r.opts.CommandOutput)
	}
	// The same writer for both makes exec share one pipe: lines stay in order.
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	if err != nil && errors.Is(err, exec.ErrWaitDelay) && ctx.Err() == nil {
		// It exited 0 but a child kept its output open; the command is done.
		err = nil
	}
	status := "exit status 0"
	if cmd.ProcessState != nil {
		status = cmd.ProcessState.String()
	}
	if err == nil {
		return status, nil
	}
	if cmd.ProcessState == nil {
		status = "did not start"
	}
	if msg := err.Error(); msg != status {
		status += " (" + msg + ")"
	}
	fmt.Fprintf(r.stderr, "rollout: command for %s: %s\n", t.name, status)
	lines := tail.Lines()
	if len(lines) == 0 {
		fmt.Fprintln(r.stderr, "rollout: the command printed nothing")
	} else {
		fmt.Fprintf(r.stderr, "rollout: its last %d output line(s):\n", len(lines))
		for _, l := range lines {
			fmt.Fprintf(r.stderr, "  | %s\n", l)
		}
	}
	if ctx.Err() != nil {
		return status, fmt.Errorf("interrupted: %s: %w", status, ctx.Err())
	}
	return status, fmt.Errorf("command failed: %s", status)
}

// commandEnv is base without any LB_ADMIN* or LB_BACKEND_* variable, plus this
// backend's LB_BACKEND_NAME, LB_BACKEND_URL and LB_BACKEND_HOST.
func commandEnv(base []string, t target) []string {
	env := make([]string, 0, len(base)+3)
	for _, kv := range base {
		if strings.HasPrefix(kv, "LB_ADMIN") || strings.HasPrefix(kv, "LB_BACKEND_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"LB_BACKEND_NAME="+t.name,
		"LB_BACKEND_URL="+t.url,
		"LB_BACKEND_HOST="+t.host,
	)
}

// tail keeps the last n lines written to it, each cut to maxLineBytes.
type tail struct {
	mu      sync.Mutex
	n       int
	lines   []string
	partial []byte
}

func newTail(n int) *tail { return &tail{n: n} }

// Write implements io.Writer.
func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rest := p
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if room := maxLineBytes - len(t.partial); room > 0 {
				t.partial = append(t.partial, rest[:min(room, len(rest))]...)
			}
			return len(p), nil
		}
		if room := maxLineBytes - len(t.partial); room > 0 {
			t.partial = append(t.partial, rest[:min(room, i)]...)
		}
		t.push(string(t.partial))
		t.partial = t.partial[:0]
		rest = rest[i+1:]
	}
}

func (t *tail) push(line string) {
	t.lines = append(t.lines, strings.TrimRight(line, "\r"))
	if len(t.lines) > t.n {
		t.lines = append(t.lines[:0], t.lines[len(t.lines)-t.n:]...)
	}
}

// Lines returns the kept lines, the unterminated last one included.
func (t *tail) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]string(nil), t.lines...)
	if len(t.partial) > 0 {
		out = append(out, string(t.partial))
		if len(out) > t.n {
			out = out[len(out)-t.n:]
		}
	}
	return out
}
