package pgfailover

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Starter starts cmd, built but not started, on the machine (or network namespace) of a
// node. It must not change cmd's credentials, environment or output; the caller waits for
// cmd. lab.Host.StartCmd is one; nil means (*exec.Cmd).Start.
type Starter func(cmd *exec.Cmd) error

// NodeSpec describes one node of a formation.
type NodeSpec struct {
	// Name is the node's name (pg_autoctl --name): [a-z0-9_-], unique in the formation.
	Name string
	// Addr is the IP address the node's PostgreSQL listens on, and at which the other
	// nodes and the monitor reach it (--listen and --hostname).
	Addr string
	// Port is its PostgreSQL port; unique on the machine (see SocketDir).
	Port int
	// Dir is the node's own directory (data directory, pg_autoctl's files, logs), created
	// if needed and removed by Close; its parents must be searchable by the postgres user.
	// Empty: Options.Dir/Name.
	Dir string
	// Start starts the node's processes (see Starter); nil: in this process's namespace.
	Start Starter
	// CandidatePriority is a data node's --candidate-priority (1-100; the highest healthy
	// node is promoted); 0 means pg_autoctl's default, 50. Ignored for the monitor.
	CandidatePriority int
}

// Node is a node of a running formation: the monitor or a data node, run by its keeper
// (`pg_autoctl run`), which starts and watches the node's PostgreSQL.
type Node struct {
	f       *Formation
	spec    NodeSpec
	monitor bool
	dir     string

	mu     sync.Mutex
	keeper *exec.Cmd
	done   chan struct{} // closed when keeper has exited
}

// Name is the node's name.
func (n *Node) Name() string { return n.spec.Name }

// IsMonitor reports whether n is the formation's monitor (else a data node).
func (n *Node) IsMonitor() bool { return n.monitor }

// Addr is the address the node listens on.
func (n *Node) Addr() string { return n.spec.Addr }

// Port is the node's PostgreSQL port.
func (n *Node) Port() int { return n.spec.Port }

// HostPort is Addr:Port, as the other nodes and clients dial it.
func (n *Node) HostPort() string { return net.JoinHostPort(n.spec.Addr, strconv.Itoa(n.spec.Port)) }

// Dir is the node's directory.
func (n *Node) Dir() string { return n.dir }

// PGData is the node's PostgreSQL data directory.
func (n *Node) PGData() string { return filepath.Join(n.dir, "pgdata") }

// LogPath is the file that receives the keeper's output and every pg_autoctl command run
// for this node. PostgreSQL's own log is in PGData()/log.
func (n *Node) LogPath() string { return filepath.Join(n.dir, "pg_autoctl.log") }

// SocketDSN is a connection URL to database db on this node as the postgres superuser,
// over the node's unix socket in SocketDir: it works from any network namespace.
func (n *Node) SocketDSN(db string) string {
	q := url.Values{"host": {SocketDir}, "port": {strconv.Itoa(n.spec.Port)}, "sslmode": {"disable"},
		"connect_timeout": {"2"}}
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + db, RawQuery: q.Encode()}
	return u.String()
}

func (n *Node) home() string { return filepath.Join(n.dir, "home") }

// marker is an environment entry every process of this node inherits (pg_autoctl, its
// children, PostgreSQL and its backends), by which Kill and the sweeper find them all.
func (n *Node) marker() string { return markerVar + "=" + n.dir }

const markerVar = "PGFAILOVER_NODE"

func (n *Node) env() []string {
	return []string{
		"PATH=" + n.f.binDir + ":/usr/bin:/bin",
		"HOME=" + n.home(),
		// pg_autoctl keeps its configuration, state and pid files under these: inside
		// the node's directory, so that Close leaves nothing in postgres' home or /tmp.
		"XDG_CONFIG_HOME=" + filepath.Join(n.home(), "config"),
		"XDG_DATA_HOME=" + filepath.Join(n.home(), "data"),
		"XDG_RUNTIME_DIR=" + filepath.Join(n.home(), "run"),
		"PGDATA=" + n.PGData(),
		"LC_ALL=C.UTF-8", // initdb: UTF8 encoding
		"TZ=UTC",
		n.marker(),
	}
}

// prepare creates the node's directories, owned by the user the node runs as, and in a
// Secure formation the user's ~/.pgpass.
func (n *Node) prepare() error {
	for _, d := range []string{n.dir, n.home(), filepath.Join(n.home(), "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("node %s: %w", n.spec.Name, err)
		}
		if err := n.f.chown(d); err != nil {
			return fmt.Errorf("node %s: %w", n.spec.Name, err)
		}
	}
	if s := n.f.opts.Secure; s != nil {
		// pg_autoctl passes the replication password to some of its connections only
		// (not to pg_rewind, nor to the check before a pg_basebackup), and pg_autoctl
		// show or perform on the monitor log in as autoctl_node: libpq finds both here.
		pgpass := fmt.Sprintf("*:*:*:autoctl_node:%s\n*:*:*:pgautofailover_replicator:%s\n", s.MonitorPassword, s.ReplicationPassword)
		p := filepath.Join(n.home(), ".pgpass")
		if err := os.WriteFile(p, []byte(pgpass), 0o600); err != nil {
			return fmt.Errorf("node %s: %w", n.spec.Name, err)
		}
		if err := n.f.chown(p); err != nil {
			return fmt.Errorf("node %s: %w", n.spec.Name, err)
		}
	}
	return nil
}

func (n *Node) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, n.f.autoctl, args...)
	cmd.Dir = n.dir
	cmd.Env = n.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: n.f.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (n *Node) start(cmd *exec.Cmd) error {
	if n.spec.Start != nil {
		return n.spec.Start(cmd)
	}
	return cmd.Start()
}

// autoctl runs `pg_autoctl ARGS` for this node to completion and returns its output; the
// output also goes to the node's log.
func (n *Node) autoctl(ctx context.Context, args ...string) (string, error) {
	cmd := n.command(ctx, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := n.start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	n.appendLog("$ pg_autoctl "+strings.Join(args, " ")+"\n", out.Bytes())
	if err != nil {
		return out.String(), fmt.Errorf("pg_autoctl %s (node %s): %w: %s", strings.Join(args[:min(2, len(args))], " "), n.spec.Name, err, tail(out.String(), 1500))
	}
	return out.String(), nil
}

func (n *Node) appendLog(head string, body []byte) {
	f, err := os.OpenFile(n.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	f.WriteString(head)
	f.Write(body)
}

// Run starts the node's keeper (`pg_autoctl run`), which starts its PostgreSQL; after a
// Kill, a Stop or a crash of its host it brings the node back. It returns once the keeper
// runs, not once PostgreSQL answers. Running a node that runs does nothing.
func (n *Node) Run(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run node %s: %w", n.spec.Name, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.runningLocked() {
		return nil
	}
	// Not bound to ctx: the keeper runs until Stop, Kill or Close.
	cmd := n.command(context.Background(), "run", "--pgdata", n.PGData())
	// A test binary that dies lets the keeper stop PostgreSQL cleanly.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	logf, err := os.OpenFile(n.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("run node %s: %w", n.spec.Name, err)
	}
	defer logf.Close() // the keeper has its own copy
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := n.start(cmd); err != nil {
		return fmt.Errorf("run node %s: %w", n.spec.Name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	n.keeper, n.done = cmd, done
	return nil
}

// Running reports whether the node's keeper runs.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.runningLocked()
}

func (n *Node) runningLocked() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// KeeperExited is closed once the keeper started by the last Run has exited (nil before
// the first Run).
func (n *Node) KeeperExited() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.done
}

// Stop stops the node as `systemctl stop` would: SIGTERM to the keeper, which stops
// PostgreSQL (fast shutdown) and exits. Past ctx, it kills what is left (Kill).
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	keeper, done := n.keeper, n.done
	n.mu.Unlock()
	if keeper != nil && n.Running() {
		keeper.Process.Signal(syscall.SIGCONT) // in case it is frozen
		keeper.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	if pids := n.processes(); len(pids) > 0 {
		// Orphans (PostgreSQL left by a keeper killed earlier), or ctx ended.
		if err := n.Kill(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stop node %s: %w (killed)", n.spec.Name, ctx.Err())
		}
	}
	return nil
}

// Kill crashes the node as a power cut would: every process of the node (keeper, its
// helpers, PostgreSQL and its backends) is stopped, then SIGKILLed, so that none can
// restart another. It returns once they are gone.
func (n *Node) Kill() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := n.processes()
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kill node %s: processes %v still alive after 10s", n.spec.Name, pids)
		}
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGSTOP)
		}
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond) // let the kernel finish them before looking again
	}
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("kill node %s: the keeper was not reaped within 10s", n.spec.Name)
		}
	}
	return nil
}

// KillPostgres SIGKILLs the node's postmaster only, as an out-of-memory killer would; the
// keeper notices and starts PostgreSQL again. It returns the pid it killed.
func (n *Node) KillPostgres() (int, error) {
	pid, err := n.PostmasterPID()
	if err != nil {
		return 0, err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("kill postgres of node %s (pid %d): %w", n.spec.Name, pid, err)
	}
	return pid, nil
}

// PostmasterPID is the pid of the node's running postmaster, from postmaster.pid, checked
// to be a live process of this node.
func (n *Node) PostmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(n.PGData(), "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("node %s: postgres is not running: %w", n.spec.Name, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("node %s: bad postmaster.pid %q", n.spec.Name, line)
	}
	if !hasEnv(pid, n.marker()) && !workingIn(pid, n.dir) {
		return 0, fmt.Errorf("node %s: postgres is not running (stale postmaster.pid names pid %d)", n.spec.Name, pid)
	}
	return pid, nil
}

// processes are the pids of every live process of this node.
func (n *Node) processes() []int { return processesOf(n.dir) }

// tail is the last max bytes of s, from a line start where possible.
func tail(s string, max int) string {
	s = strings.TrimSpace(s)
	if len(s) <= max {
		return s
	}
	s = s[len(s)-max:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "[...] " + s
}
