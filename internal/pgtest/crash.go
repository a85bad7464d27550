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
	pid := proc.Process.Pid
	_ = proc.Process.Signal(sig)
	select {
	case <-done:
	case <-ctx.Done():
		_ = proc.Process.Kill()
		<-done
	}
	// After a SIGKILL the backends notice their postmaster's death by themselves: a new
	// postmaster refuses to start while they still hold the shared memory.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for groupAlive(pid) {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			return fmt.Errorf("postgres in %s: server processes still running after %v: %w", c.dir, sig, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// groupAlive reports whether a process of process group pgid is alive (zombies, which have
// released their memory, do not count). The postmaster leads its own group (Setpgid), and
// its backends inherit it.
func groupAlive(pgid int) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			return true
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
