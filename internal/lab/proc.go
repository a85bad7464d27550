package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcSpec describes a long-running process to start on a host.
type ProcSpec struct {
	// Name names the log file (HOST-DIR/NAME.log) and the process in messages; unique on
	// the host. Empty: the base name of Argv[0], numbered if taken.
	Name string
	// Argv is the program and its arguments; a program without a slash is looked up in PATH.
	Argv []string
	// Env is added to this process's environment (a later entry wins over an earlier one).
	Env []string
	// Dir is the working directory; empty: the host's directory.
	Dir string
	// User runs the process as this user, with its primary group and no supplementary
	// groups (pg_autoctl and postgres refuse to run as root). Empty: as this process.
	User string
	// StopSignal is what Stop and the lab's Close send first. Zero: SIGTERM.
	StopSignal syscall.Signal
	// EntersItself starts the process in this process's network namespace, for a program
	// told to enter the host's by itself (keepalived -s NAMESPACE: its process tracking
	// works only when it starts in the initial namespace). Crash and Close kill it wherever
	// it is.
	EntersItself bool
}

// Proc is a process started on a host. Its stdout and stderr go to its log file.
type Proc struct {
	host    *Host
	name    string
	cmd     *exec.Cmd
	logPath string
	stopSig syscall.Signal
	done    chan struct{}
	err     error // set before done is closed
}

// Start starts a long-running process on the host, in the host's network namespace and
// its own process group, with SIGKILL as its parent-death signal (nothing outlives the test
// binary). ctx bounds only the start: the process runs until it exits, Stop or Kill, a
// Crash of its host, or the lab's Close.
func (h *Host) Start(ctx context.Context, spec ProcSpec) (*Proc, error) {
	if len(spec.Argv) == 0 {
		return nil, errors.New("lab: start: empty Argv")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lab: start %s: %w", spec.Argv[0], err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.crashed {
		return nil, fmt.Errorf("lab: start %s on %s: the host has crashed (Boot it first)", spec.Argv[0], h.name)
	}
	name := h.procNameLocked(spec)
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Dir = spec.Dir
	if cmd.Dir == "" {
		cmd.Dir = h.dir
	}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if spec.User != "" {
		cred, err := credential(spec.User)
		if err != nil {
			return nil, fmt.Errorf("lab: start %s: %w", name, err)
		}
		attr.Credential = cred
	}
	cmd.SysProcAttr = attr
	logPath := filepath.Join(h.dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab: start %s: %w", name, err)
	}
	defer logf.Close() // the child has its own copy
	cmd.Stdout, cmd.Stderr = logf, logf
	start := h.ns.start
	if spec.EntersItself {
		start = (*exec.Cmd).Start
	}
	if err := start(cmd); err != nil {
		return nil, fmt.Errorf("lab: start %s on %s: %w", name, h.name, err)
	}
	p := &Proc{host: h, name: name, cmd: cmd, logPath: logPath, stopSig: spec.StopSignal, done: make(chan struct{})}
	if p.stopSig == 0 {
		p.stopSig = syscall.SIGTERM
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	h.procs = append(h.procs, p)
	return p, nil
}

func (h *Host) procNameLocked(spec ProcSpec) string {
	base := spec.Name
	if base == "" {
		base = filepath.Base(spec.Argv[0])
	}
	taken := func(n string) bool {
		for _, p := range h.procs {
			if p.name == n {
				return true
			}
		}
		return false
	}
	name := base
	for i := 2; taken(name); i++ {
		name = base + "-" + strconv.Itoa(i)
	}
	return name
}

// credential is the uid and primary gid of user name, with no supplementary groups.
func credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user %s: uid %q gid %q", name, u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// StartCmd starts cmd (not yet started) in the host's network namespace, for a caller that
// builds its own exec.Cmd (pgtest's PostgreSQL, a command fed on stdin). Unless cmd sets
// one, its parent-death signal is SIGKILL. The caller waits for it; Crash and Close kill it
// like any process on the host.
func (h *Host) StartCmd(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := h.ns.start(cmd); err != nil {
		return fmt.Errorf("lab: start %s on %s: %w", cmd.Path, h.name, err)
	}
	return nil
}

// Run runs a command on the host to completion and returns its combined output. A
// non-zero exit is an error (an *exec.ExitError inside) that carries the output.
func (h *Host) Run(ctx context.Context, argv ...string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("lab: run: empty argv")
	}
	out, err := h.ns.run(ctx, "", argv[0], argv[1:]...)
	if err != nil {
		return out, fmt.Errorf("lab: on %s: %w", h.name, err)
	}
	return out, nil
}

// Name is the process's name on its host (its log is HOST-DIR/NAME.log).
func (p *Proc) Name() string { return p.name }

// Host is the host the process runs on.
func (p *Proc) Host() *Host { return p.host }

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// LogPath is the file that receives the process's stdout and stderr.
func (p *Proc) LogPath() string { return p.logPath }

// Log returns what the process has written so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// Signal sends sig to the process. Signalling an exited process is not an error.
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("lab: signal %s on %s: %w", p.name, p.host.name, err)
	}
	return nil
}

// Kill sends SIGKILL to the process (not its children: Crash kills a whole host).
func (p *Proc) Kill() error { return p.Signal(syscall.SIGKILL) }

// Exited is closed once the process has exited and been reaped.
func (p *Proc) Exited() <-chan struct{} { return p.done }

// Wait waits until the process exits or ctx ends, and returns how it exited: nil for
// status 0, else an *exec.ExitError (or ctx's error).
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("lab: wait for %s on %s: %w", p.name, p.host.name, ctx.Err())
	}
}

// Stop sends the process its StopSignal (and SIGCONT, in case it is frozen), waits for it
// to exit, and SIGKILLs it when ctx ends first. It returns how it exited.
func (p *Proc) Stop(ctx context.Context) error {
	p.Signal(p.stopSig)
	p.Signal(syscall.SIGCONT)
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		p.Kill()
		<-p.done
		return p.err
	}
}

// waitProcs waits (bounded by ctx) until every process started with Start has been reaped.
func (h *Host) waitProcs(ctx context.Context) {
	for _, p := range h.Procs() {
		select {
		case <-p.done:
		case <-ctx.Done():
			return
		}
	}
}

// tailFile is the last max bytes of a file, from a line start where possible.
func tailFile(path string, max int) string {
	b, _ := os.ReadFile(path)
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		b = append([]byte("[...]\n"), b...)
	}
	return strings.TrimRight(string(b), "\n")
}

// procWaitPoll is how often Crash and Freeze look at a host's processes.
const procWaitPoll = 5 * time.Millisecond
