package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one process of the fleet (lb or an app server) started from a binary with
// fixed arguments and environment. It can be signalled and started again; its log
// is kept across runs.
type Proc struct {
	name string
	log  *Log
	args []string
	env  []string
	dir  string // working directory

	mu      sync.Mutex
	binary  string
	cmd     *exec.Cmd
	gen     int               // which run is current; lines of older runs do not set addresses
	exited  chan struct{}     // closed when the current run exits
	exitErr error             // the last run's exit (nil for status 0)
	addrs   map[string]string // listener -> address from the current run's "listening" lines
	changed chan struct{}     // closed and replaced whenever addrs or the run state change
}

// newProc prepares a process; it does not start it.
func newProc(name, dir, logPath, binary string, args, env []string) (*Proc, error) {
	l, err := newLog(name, logPath)
	if err != nil {
		return nil, err
	}
	return &Proc{name: name, log: l, binary: binary, args: args, env: env, dir: dir, changed: make(chan struct{})}, nil
}

// Dir is the process's working directory (its TMPDIR is Dir/tmp).
func (p *Proc) Dir() string { return p.dir }

// Name is the process's name in the fleet: "lb", "app-1", ...
func (p *Proc) Name() string { return p.name }

// Log is the process's captured output.
func (p *Proc) Log() *Log { return p.log }

// Binary is the program the current (or last) run was started from.
func (p *Proc) Binary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.binary
}

// Pid is the process id of the current run, 0 when it is not running.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil || isClosed(p.exited) {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the current run has not exited yet.
func (p *Proc) Running() bool { return p.Pid() != 0 }

// Addr is the address the current run logged as listening for listener ("app",
// "https", "http", "admin"), or "".
func (p *Proc) Addr(listener string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[listener]
}

// ExitErr is how the last run ended: nil for exit status 0, an *exec.ExitError
// otherwise; it is meaningful once the run exited.
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// notifyLocked wakes everything waiting for a change; p.mu must be held.
func (p *Proc) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// start runs binary (the same arguments and environment as before); it does not wait
// for the process to listen.
func (p *Proc) start(binary string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.exited) {
		return fmt.Errorf("start %s: already running as pid %d", p.name, p.cmd.Process.Pid)
	}
	if binary != "" {
		p.binary = binary
	}
	p.gen++
	gen := p.gen
	w := &lineWriter{fn: func(b []byte) { p.line(gen, b) }}
	cmd := exec.Command(p.binary, p.args...)
	cmd.Env = p.env
	cmd.Dir = p.dir
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // a terminal's Ctrl-C reaches the fleet, which stops its processes in order
		Pdeathsig: syscall.SIGKILL, // nothing outlives the fleet's process
	}
	cmd.WaitDelay = 2 * time.Second // output copying must not hang Wait
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s (%s): %w", p.name, p.binary, err)
	}
	p.log.Note("started %s pid %d", p.binary, cmd.Process.Pid)
	p.cmd = cmd
	p.exited = make(chan struct{})
	p.addrs = map[string]string{}
	p.notifyLocked()
	exited := p.exited
	go func() {
		err := cmd.Wait()
		w.flush()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.exitErr = err
		close(exited)
		p.notifyLocked()
		p.log.Note("pid %d exited: %s", cmd.Process.Pid, exitText(err))
	}()
	return nil
}

// line records one output line of run gen, and the address of a "listening" line.
func (p *Proc) line(gen int, b []byte) {
	p.log.add(b)
	if len(b) == 0 || b[0] != '{' || !strings.Contains(string(b), "listening") {
		return
	}
	l := parseLine(p.name, string(b))
	if l.Msg() != "listening" || l.Str("addr") == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen != p.gen {
		return
	}
	p.addrs[l.Str("listener")] = l.Str("addr")
	p.notifyLocked()
}

// waitListening waits until the current run logged "listening" for every named
// listener, and fails early if it exits first.
func (p *Proc) waitListening(ctx context.Context, listeners ...string) error {
	for {
		p.mu.Lock()
		missing := ""
		for _, l := range listeners {
			if p.addrs[l] == "" {
				missing = l
				break
			}
		}
		exited, changed := p.exited, p.changed
		p.mu.Unlock()
		if missing == "" {
			return nil
		}
		if isClosed(exited) {
			return fmt.Errorf("%s exited before listening (%s): %s", p.name, exitText(p.ExitErr()), strings.Join(p.log.Tail(5), " | "))
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%s: no %q listening line: %w", p.name, missing, context.Cause(ctx))
		}
	}
}

// Signal sends sig to the current run.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || isClosed(p.exited) {
		return fmt.Errorf("signal %s: %s is not running", sig, p.name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s to %s: %w", sig, p.name, err)
	}
	return nil
}

// Wait waits for the current run to exit and returns how it ended.
func (p *Proc) Wait(ctx context.Context) error {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if exited == nil {
		return nil
	}
	select {
	case <-exited:
		return p.ExitErr()
	case <-ctx.Done():
		return fmt.Errorf("wait for %s to exit: %w", p.name, context.Cause(ctx))
	}
}

// waitState polls /proc until the process is in state want ('T' stopped, 'S'/'R' running).
func (p *Proc) waitState(ctx context.Context, want func(byte) bool) error {
	pid := p.Pid()
	if pid == 0 {
		return fmt.Errorf("%s is not running", p.name)
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := procState(pid)
		if err != nil {
			return fmt.Errorf("state of %s: %w", p.name, err)
		}
		if want(st) {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("%s stays in state %c: %w", p.name, st, context.Cause(ctx))
		}
	}
}

// stop ends the current run: SIGCONT (a stopped process cannot handle SIGTERM), SIGTERM,
// and SIGKILL when ctx ends first. It returns the run's exit.
func (p *Proc) stop(ctx context.Context) error {
	if !p.Running() {
		return nil
	}
	_ = p.Signal(syscall.SIGCONT)
	_ = p.Signal(syscall.SIGTERM)
	err := p.Wait(ctx)
	if p.Running() {
		_ = p.Signal(syscall.SIGKILL)
		kctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Wait(kctx)
		return fmt.Errorf("stop %s: killed after: %w", p.name, err)
	}
	return err
}

// procState reads a process's state letter from /proc/PID/stat.
func procState(pid int) (byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// pid (comm) S ...; comm may contain spaces and parentheses, so use the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0, errors.New("unexpected /proc stat format")
	}
	return s[i+2], nil
}

// exitText describes a Wait result for the log.
func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// isClosed reports whether ch is closed (a nil channel is not).
func isClosed(ch chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
