package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// InstallHint is the command that installs the PostgreSQL server binaries on Debian and Ubuntu.
const InstallHint = "apt-get install -y postgresql"

// ErrNoPostgres means no initdb/postgres binaries were found on this machine.
var ErrNoPostgres = errors.New("no PostgreSQL server binaries (initdb, postgres) found in /usr/lib/postgresql/*/bin or $PATH; install them with: " + InstallHint)

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// Dir holds the data directory (Dir/data), the unix socket and the server log.
	// Empty means a new /tmp/pgtest-* directory, removed by Close.
	// An already initialised Dir/data is reused as is.
	Dir string
	// Port is the TCP port to listen on; 0 means the unix socket only.
	Port int
	// ListenAddr is the address to listen on with Port. Empty: 127.0.0.1.
	ListenAddr string
	// TrustedNetwork, a CIDR such as "198.18.0.0/24", adds a pg_hba.conf line trusting
	// every user from it (initdb trusts loopback only).
	TrustedNetwork string
	// StartServer starts the postgres process; nil: cmd.Start. A lab test passes
	// (*lab.Host).StartCmd to run the server on a lab host.
	StartServer func(cmd *exec.Cmd) error
	// Settings are extra server settings, "name=value" each, applied after pgtest's own
	// (fsync=off, synchronous_commit=off, ...), so they can override them.
	Settings []string
}

// Cluster is a private PostgreSQL server run from the machine's initdb/postgres binaries.
// As root, the server runs as the postgres user (or nobody).
type Cluster struct {
	dir     string
	ownDir  bool
	port    int
	listen  string
	trusted string
	startFn func(*exec.Cmd) error
	// settings are ClusterOptions.Settings.
	settings []string
	binDir   string
	cred     *syscall.Credential
	lock     *os.File // flock held while this process owns dir; tells sweepers it is alive
	logPath  string

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{} // closed when proc has exited
}

// socketPort is the port number in the unix socket's file name when no TCP port is set.
const socketPort = 5432

// StartCluster initialises (if needed) and starts a private PostgreSQL server, and returns
// once it accepts connections.
func StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	return startCluster(ctx, opts, (*Cluster).initdb)
}

// startCluster is StartCluster with the data directory made by initData: initdb, or a base
// backup of another cluster (see StartStandby).
func startCluster(ctx context.Context, opts ClusterOptions, initData func(*Cluster, context.Context) error) (*Cluster, error) {
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{port: opts.Port, listen: opts.ListenAddr, trusted: opts.TrustedNetwork,
		startFn: opts.StartServer, binDir: binDir, settings: opts.Settings}
	if c.listen == "" {
		c.listen = "127.0.0.1"
	}
	if c.startFn == nil {
		c.startFn = (*exec.Cmd).Start
	}
	if os.Geteuid() == 0 {
		cred, err := serverCredential()
		if err != nil {
			return nil, err
		}
		c.cred = cred
	}
	if opts.Dir == "" {
		sweepStale()
		dir, err := os.MkdirTemp("/tmp", "pgtest-")
		if err != nil {
			return nil, fmt.Errorf("create cluster dir: %w", err)
		}
		c.dir, c.ownDir = dir, true
		if err := c.takeLock(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	} else {
		dir, err := filepath.Abs(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("cluster dir %q: %w", opts.Dir, err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create cluster dir: %w", err)
		}
		c.dir = dir
		if err := c.takeLock(); err != nil {
			return nil, err
		}
	}
	if len(filepath.Join(c.dir, ".s.PGSQL.65535")) > 107 {
		c.cleanupDir()
		return nil, fmt.Errorf("cluster dir %q: too long for a unix socket path", c.dir)
	}
	c.logPath = filepath.Join(c.dir, "postgres.log")
	if err := c.chown(c.dir); err != nil {
		c.cleanupDir()
		return nil, err
	}
	if err := initData(c, ctx); err != nil {
		c.cleanupDir()
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		c.cleanupDir()
		return nil, err
	}
	return c, nil
}

// serverCredential is the user the server runs as when we are root: postgres, else nobody.
func serverCredential() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, errors.New("running as root, but neither the postgres nor the nobody user exists to run PostgreSQL as")
}

func (c *Cluster) chown(p string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(p, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("chown cluster dir %q: %w", p, err)
	}
	return nil
}

// takeLock holds an exclusive flock on dir/lock for the life of this process, so sweepers in
// other processes leave the directory alone.
func (c *Cluster) takeLock() error {
	f, err := os.OpenFile(filepath.Join(c.dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("create cluster lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("lock cluster dir: %w", err)
	}
	c.lock = f
	return nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"LC_ALL=C", "TZ=UTC", "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: c.cred,
		Setpgid:    true,            // a terminal's Ctrl-C goes to the test binary, not straight to postgres
		Pdeathsig:  syscall.SIGQUIT, // immediate shutdown when the test binary dies
	}
	return cmd
}

func (c *Cluster) initdb(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); err != nil {
		cmd := c.command(ctx, "initdb", "-D", c.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8",
			"--no-locale", "--no-sync", "--no-instructions")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("initdb %s: %w: %s", c.dataDir(), err, bytes.TrimSpace(out))
		}
	}
	return c.trustNetwork()
}

// trustNetwork adds the pg_hba.conf line for TrustedNetwork, once.
func (c *Cluster) trustNetwork() error {
	if c.trusted == "" {
		return nil
	}
	hba := filepath.Join(c.dataDir(), "pg_hba.conf")
	b, err := os.ReadFile(hba)
	if err != nil {
		return fmt.Errorf("read pg_hba.conf: %w", err)
	}
	line := "host all all " + c.trusted + " trust\n"
	if strings.Contains(string(b), line) {
		return nil
	}
	f, err := os.OpenFile(hba, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open pg_hba.conf: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return nil
}

// Start starts the server on the existing data directory and waits until it accepts
// connections. It does nothing if the server is running.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		select {
		case <-c.done: // it died (killed, or its lab host crashed): start it again
			c.proc, c.done = nil, nil
		default:
			return nil
		}
	}
	listen := ""
	if c.port > 0 {
		listen = c.listen
	}
	port := c.port
	if port == 0 {
		port = socketPort
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open postgres log: %w", err)
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, 2)
	// Not CommandContext: the server outlives ctx, which only bounds the start.
	args := []string{"-D", c.dataDir(), "-k", c.dir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=" + listen,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB",
		"-c", "logging_collector=off", "-c", "log_min_messages=warning"}
	for _, s := range c.settings {
		args = append(args, "-c", s)
	}
	cmd := c.command(context.Background(), "postgres", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := c.startFn(cmd); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	c.proc, c.done = cmd, done

	if err := c.waitReady(ctx, done); err != nil {
		c.stopLocked(context.Background())
		return fmt.Errorf("postgres in %s did not start: %w; log: %s", c.dir, err, c.logTail(logStart))
	}
	return nil
}

// waitReady connects (over the unix socket, which every network namespace reaches) every
// 10 ms until the server answers, exits or ctx ends.
func (c *Cluster) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(cctx, c.SocketDSN("postgres"))
		ccancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		lastErr = err
		select {
		case <-exited:
			return errors.New("the server exited")
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

func (c *Cluster) logTail(from int64) string {
	b, err := os.ReadFile(c.logPath)
	if err != nil || from > int64(len(b)) {
		return ""
	}
	b = b[from:]
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// Close stops the server and removes its data: the whole directory when StartCluster created
// it, else the data subdirectory, socket lock and log.
func (c *Cluster) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.Stop(ctx)
	if rmErr := c.cleanupDir(); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

func (c *Cluster) cleanupDir() error {
	var err error
	if c.ownDir {
		err = os.RemoveAll(c.dir)
	} else {
		err = os.RemoveAll(c.dataDir())
		os.Remove(c.logPath)
		os.Remove(filepath.Join(c.dir, "lock"))
	}
	if c.lock != nil {
		c.lock.Close()
		c.lock = nil
	}
	if err != nil {
		return fmt.Errorf("remove cluster dir: %w", err)
	}
	return nil
}

// Port is the TCP port the server listens on (at ListenAddr), or 0 for the unix socket only.
func (c *Cluster) Port() int { return c.port }

// LogPath is the server's log file.
func (c *Cluster) LogPath() string { return c.logPath }

// Dir is the directory holding the data directory, the unix socket and postgres.log.
func (c *Cluster) Dir() string { return c.dir }

// DSN is a connection URL for database db as the postgres superuser (trust auth): over TCP
// to ListenAddr when the cluster has a port, else over its unix socket.
func (c *Cluster) DSN(db string) string {
	if c.port > 0 {
		u := url.URL{Scheme: "postgres", User: url.User("postgres"),
			Host: net.JoinHostPort(c.listen, strconv.Itoa(c.port)), Path: "/" + db, RawQuery: "sslmode=disable"}
		return u.String()
	}
	return c.SocketDSN(db)
}

// SocketDSN is a connection URL for database db over the cluster's unix socket, which a
// test reaches from any network namespace (a cluster on a lab host included).
func (c *Cluster) SocketDSN(db string) string {
	port := c.port
	if port == 0 {
		port = socketPort
	}
	q := url.Values{"host": {c.dir}, "port": {strconv.Itoa(port)}, "sslmode": {"disable"}}
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + db, RawQuery: q.Encode()}
	return u.String()
}
