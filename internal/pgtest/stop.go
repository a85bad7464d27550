package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

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
