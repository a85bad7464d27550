package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Kill kills the postmaster with SIGKILL, as a crash of its host would (no shutdown, crash
// recovery at the next Start), and waits until it and every server process it started have
// exited, so that Start can reuse the data directory. It does nothing if the server is not
// running.
func (c *Cluster) Kill(ctx context.Context) error { return c.abort(ctx, syscall.SIGKILL) }

// StopImmediate stops the server as `pg_ctl stop -m immediate` does (SIGQUIT: sessions are cut
// at once, no checkpoint, crash recovery at the next Start) and waits for every server
// process to exit. It does nothing if the server is not running.
func (c *Cluster) StopImmediate(ctx context.Context) error { return c.abort(ctx, syscall.SIGQUIT) }

func (c *Cluster) abort(ctx context.Context, sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return nil
	}
	proc, done := c.proc, c.done
	c.proc, c.done = nil, nil
	shmid := c.shmID()
	_ = proc.Process.Signal(sig)
	select {
	case <-done:
	case <-ctx.Done():
		_ = proc.Process.Kill()
		<-done
	}
	// After a SIGKILL the backends notice their postmaster's death by themselves (each
	// leads a process group of its own): a new postmaster refuses to start while one of
	// them is still attached to the shared memory.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for shmAttached(shmid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres in %s: server processes still attached after %v: %w", c.dir, sig, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// shmID is the System V shared memory id the server recorded in postmaster.pid (line 7:
// "key id"), or -1.
func (c *Cluster) shmID() int {
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return -1
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return -1
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return -1
	}
	id, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return id
}

// shmAttached reports whether a process is attached to shared memory segment id.
func shmAttached(id int) bool {
	if id < 0 {
		return false
	}
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line) // key shmid perms size cpid lpid nattch ...
		if len(f) > 6 && f[1] == strconv.Itoa(id) {
			return f[6] != "0"
		}
	}
	return false
}

// StartStandby makes a streaming replica of primary (pg_basebackup -R with WAL streamed, over
// primary's unix socket) in a new directory, starts it with opts (opts.Dir must be empty) and
// returns it once it accepts connections, which are read-only until Promote. For a
// replication that loses no commit, start the primary with the Settings
// "synchronous_standby_names=*" and "synchronous_commit=on".
func StartStandby(ctx context.Context, primary *Cluster, opts ClusterOptions) (*Cluster, error) {
	if opts.Dir != "" {
		return nil, fmt.Errorf("pgtest: StartStandby makes its own directory; Dir must be empty")
	}
	return startCluster(ctx, opts, func(c *Cluster, ctx context.Context) error {
		if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); err == nil {
			return nil
		}
		port := primary.port
		if port == 0 {
			port = socketPort
		}
		cmd := c.command(ctx, "pg_basebackup", "-D", c.dataDir(), "-R", "-X", "stream", "-c", "fast",
			"--no-sync", "-h", primary.dir, "-p", strconv.Itoa(port), "-U", "postgres")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("pg_basebackup from %s: %w: %s", primary.dir, err, bytes.TrimSpace(out))
		}
		return nil
	})
}

// Promote turns a standby into a primary (pg_ctl promote) and waits until it accepts writes.
func (c *Cluster) Promote(ctx context.Context) error {
	out, err := c.command(ctx, "pg_ctl", "promote", "-w", "-t", "60", "-D", c.dataDir()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl promote %s: %w: %s", c.dataDir(), err, bytes.TrimSpace(out))
	}
	return nil
}
