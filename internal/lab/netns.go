package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` binds named network namespaces.
const netnsDir = "/run/netns"

// netns is a named network namespace (one made by `ip netns add`).
type netns string

func (n netns) path() string { return filepath.Join(netnsDir, string(n)) }

// do runs fn on a fresh goroutine whose OS thread has entered the namespace, and returns
// fn's error. Sockets fn creates belong to the namespace for good; processes fn forks start
// in it. The thread goes back to the namespace it came from before it is unlocked; if it
// cannot, it stays locked, so the runtime ends the thread with the goroutine and no other
// goroutine ever runs in the wrong namespace. Threads the runtime creates meanwhile come from
// its clean template thread, not from this one.
func (n netns) do(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		done <- n.doLocked(fn)
	}()
	return <-done
}

// doLocked is do on a thread already locked by the calling goroutine. It unlocks the thread
// only when the thread is back in its own namespace.
func (n netns) doLocked(fn func() error) error {
	// thread-self, not self: another thread of this process may be elsewhere right now.
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open this thread's network namespace: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(n.path())
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open network namespace %s: %w", n, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", n, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Stay locked: the runtime ends this thread when the goroutine returns.
		return errors.Join(fnErr, fmt.Errorf("return from network namespace %s: %w", n, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// nsID identifies a network namespace: the device and inode of its nsfs file.
type nsID struct{ dev, ino uint64 }

func statNS(path string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, err
	}
	return nsID{dev: st.Dev, ino: st.Ino}, nil
}

// pids lists the processes in the namespace (as `ip netns pids` does), never this process.
// A process that has exited (a zombie included) is not listed.
func (n netns) pids() ([]int, error) {
	want, err := statNS(n.path())
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", n, err)
	}
	return pidsIn(want)
}

func pidsIn(want nsID) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		id, err := statNS(filepath.Join("/proc", e.Name(), "ns", "net"))
		if err != nil || id != want {
			continue // gone, a zombie, or elsewhere
		}
		out = append(out, pid)
	}
	return out, nil
}

// signalAll sends sig to every process in the namespace and returns how many it signalled.
func (n netns) signalAll(sig syscall.Signal) (int, error) {
	pids, err := n.pids()
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err == nil {
			sent++
		}
	}
	return sent, nil
}

// start starts cmd in the namespace. The child inherits the namespace from the thread that
// forks it; set cmd.SysProcAttr.Pdeathsig (it fires when that thread exits, which do's
// threads never do once back home).
func (n netns) start(cmd *exec.Cmd) error {
	return n.do(cmd.Start)
}

// run runs a command in the namespace to completion, with stdin (if not empty), and
// returns its combined output; the error names the command and carries its output.
func (n netns) run(ctx context.Context, stdin, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := n.start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s %s (in %s): %w: %s", name, strings.Join(args, " "), n, err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// sysctlPath is the /proc/sys file of a net.* sysctl; other keys are refused, since they
// are not per namespace and would change the whole machine.
func sysctlPath(key string) (string, error) {
	if !strings.HasPrefix(key, "net.") || strings.Contains(key, "/") || strings.Contains(key, "..") {
		return "", fmt.Errorf("sysctl %q: only net.* keys are per network namespace", key)
	}
	return "/proc/sys/" + strings.ReplaceAll(key, ".", "/"), nil
}

// setSysctl writes a net.* sysctl of the namespace.
func setSysctl(n netns, key, value string) error {
	p, err := sysctlPath(key)
	if err != nil {
		return err
	}
	return n.do(func() error {
		if err := os.WriteFile(p, []byte(value), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
		}
		return nil
	})
}

// getSysctl reads a net.* sysctl of the namespace.
func getSysctl(n netns, key string) (string, error) {
	p, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	var v string
	err = n.do(func() error {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", key, err)
		}
		v = strings.TrimSpace(string(b))
		return nil
	})
	return v, err
}
