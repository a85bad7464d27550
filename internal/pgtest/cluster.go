package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	// Port is the TCP port on 127.0.0.1 to listen on; 0 means the unix socket only.
	Port int
}

// Cluster is a private PostgreSQL server run from the machine's initdb/postgres binaries.
// As root, the server runs as the postgres user (or nobody).
type Cluster struct {
	dir     string
	ownDir  bool
	port    int
	binDir  string
	cred    *syscall.Credential
	lock    *os.File // flock held while this process owns dir; tells sweepers it is alive
	logPath string

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{} // closed when proc has exited
}

// socketPort is the port number in the unix socket's file name when no TCP port is set.
const socketPort = 5432

// StartCluster initialises (if needed) and starts a private PostgreSQL server, and returns
// once it accepts connections.
func StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{port: opts.Port, binDir: binDir}
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
	if err := c.initdb(ctx); err != nil {
		c.cleanupDir()
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		c.cleanupDir()
		return nil, err
	}
	return c, nil
}

// FindBinDir returns the directory holding initdb and postgres: the highest version under
// /usr/lib/postgresql, else the first directory of $PATH that has both. ErrNoPostgres if none.
func FindBinDir() (string, error) {
	return findBinDir("/usr/lib/postgresql/*/bin", os.Getenv("PATH"))
}

func findBinDir(pattern, pathList string) (string, error) {
	hasBoth := func(d string) bool {
		return executable(filepath.Join(d, "initdb")) && executable(filepath.Join(d, "postgres"))
	}
	dirs, _ := filepath.Glob(pattern)
	best, bestVer := "", -1.0
	for _, d := range dirs {
		if !hasBoth(d) {
			continue
		}
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		if v > bestVer {
			best, bestVer = d, v
		}
	}
	if best != "" {
		return best, nil
	}
	for _, d := range filepath.SplitList(pathList) {
		if d != "" && hasBoth(d) {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
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
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); err == nil {
		return nil
	}
	cmd := c.command(ctx, "initdb", "-D", c.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--no-locale", "--no-sync", "--no-instructions")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb %s: %w: %s", c.dataDir(), err, bytes.TrimSpace(out))
	}
	return nil
}

// Start starts the server on the existing data directory and waits until it accepts
// connections. It does nothing if the server is running.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return nil
	}
	listen := ""
	if c.port > 0 {
		listen = "127.0.0.1"
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
	cmd := c.command(context.Background(), "postgres",
		"-D", c.dataDir(), "-k", c.dir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses="+listen,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB",
		"-c", "logging_collector=off", "-c", "log_min_messages=warning")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
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

// waitReady connects every 10 ms until the server answers, exits or ctx ends.
func (c *Cluster) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(cctx, c.DSN("postgres"))
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

// Stop shuts the server down (fast shutdown: open sessions are disconnected) and waits for it
// to exit; past ctx it kills it. It does nothing if the server is not running.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked(ctx)
}

func (c *Cluster) stopLocked(ctx context.Context) error {
	if c.proc == nil {
		return nil
	}
	proc, done := c.proc, c.done
	c.proc, c.done = nil, nil
	select {
	case <-done:
		return nil // already gone
	default:
	}
	if err := proc.Process.Signal(syscall.SIGINT); err != nil {
		<-done
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		proc.Process.Kill()
		<-done
		return fmt.Errorf("stop postgres in %s: %w (killed)", c.dir, ctx.Err())
	}
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

// Port is the TCP port the server listens on at 127.0.0.1, or 0 for the unix socket only.
func (c *Cluster) Port() int { return c.port }

// Dir is the directory holding the data directory, the unix socket and postgres.log.
func (c *Cluster) Dir() string { return c.dir }

// DSN is a connection URL for database db as the postgres superuser (trust auth): over TCP
// when the cluster has a port, else over its unix socket.
func (c *Cluster) DSN(db string) string {
	if c.port > 0 {
		u := url.URL{Scheme: "postgres", User: url.User("postgres"),
			Host: "127.0.0.1:" + strconv.Itoa(c.port), Path: "/" + db, RawQuery: "sslmode=disable"}
		return u.String()
	}
	q := url.Values{"host": {c.dir}, "port": {strconv.Itoa(socketPort)}, "sslmode": {"disable"}}
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + db, RawQuery: q.Encode()}
	return u.String()
}

// sweepStale removes /tmp/pgtest-* directories left by test binaries that died: their lock is
// free and their postmaster (if any) is gone. Directories without a lock file are left for a
// minute, as their creator may be about to take it.
func sweepStale() {
	dirs, _ := filepath.Glob("/tmp/pgtest-*")
	for _, d := range dirs {
		fi, err := os.Lstat(d)
		if err != nil || !fi.IsDir() {
			continue
		}
		f, err := os.OpenFile(filepath.Join(d, "lock"), os.O_RDWR, 0)
		if err != nil {
			if time.Since(fi.ModTime()) < time.Minute {
				continue
			}
		} else {
			if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
				f.Close()
				continue // its owner is alive
			}
		}
		if !postmasterAlive(d) {
			os.RemoveAll(d)
		}
		if f != nil {
			f.Close()
		}
	}
}

func postmasterAlive(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
