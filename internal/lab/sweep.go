package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Names. A lab is "olab-PID-N": its directory /tmp/olab-PID-N (N made unique by
// os.MkdirTemp) and its switch's network namespace. Host H's namespace is "olab-PID-N-H".
// Switch ports are "olPIDhI" (at most 15 bytes, the kernel's limit for a link name).
const namePrefix = "olab-"

var (
	labNameRE = regexp.MustCompile(`^olab-([0-9]+)-([0-9]+)(?:-[a-z][a-z0-9-]*)?$`)
	linkRE    = regexp.MustCompile(`^ol([0-9]+)h[0-9]+$`)
	hostRE    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
)

func portName(pid, index int) string { return fmt.Sprintf("ol%dh%d", pid, index) }

// ownerPID is the process id embedded in a lab namespace, directory or link name, or 0.
func ownerPID(name string) int {
	var m []string
	if m = labNameRE.FindStringSubmatch(name); m == nil {
		if m = linkRE.FindStringSubmatch(name); m == nil {
			return 0
		}
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil {
		return 0
	}
	return pid
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Sweep removes what labs of processes that no longer exist left behind: their namespaces
// (after killing every process still in them), their directories under tmpDir (empty: the
// system's temporary directory), and switch ports stranded in the initial namespace. Labs
// of live processes, this one's included, are never touched. New calls it.
func Sweep(ctx context.Context, tmpDir string) error {
	if tmpDir == "" {
		tmpDir = os.TempDir()
	}
	var errs []error
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("list network namespaces: %w", err))
	}
	for _, e := range entries {
		pid := ownerPID(e.Name())
		if pid == 0 || alive(pid) {
			continue
		}
		if err := removeNetns(ctx, netns(e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(tmpDir, namePrefix+"*"))
	for _, d := range dirs {
		if pid := ownerPID(filepath.Base(d)); pid != 0 && !alive(pid) {
			if err := os.RemoveAll(d); err != nil {
				errs = append(errs, fmt.Errorf("remove leftover lab directory: %w", err))
			}
		}
	}
	links, err := os.ReadDir("/sys/class/net")
	if err == nil {
		for _, l := range links {
			if pid := ownerPID(l.Name()); pid != 0 && !alive(pid) {
				if _, err := ipCmd(ctx, "link", "del", l.Name()); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// removeNetns kills every process in the namespace, waits for them to exit, and deletes it.
func removeNetns(ctx context.Context, n netns) error {
	if err := killAll(ctx, n); err != nil {
		return err
	}
	if _, err := ipCmd(ctx, "netns", "del", string(n)); err != nil {
		if _, statErr := os.Stat(n.path()); errors.Is(statErr, os.ErrNotExist) {
			return nil // someone else swept it first
		}
		return err
	}
	return nil
}

// killAll SIGKILLs every process in the namespace until none is left (a process may fork
// while it is being killed), or ctx ends, or 10 s pass.
func killAll(ctx context.Context, n netns) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		sent, err := n.signalAll(syscall.SIGKILL)
		if err != nil {
			if _, statErr := os.Stat(n.path()); errors.Is(statErr, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if sent == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("network namespace %s: processes still running after SIGKILL", n)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kill processes in network namespace %s: %w", n, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ipCmd runs ip(8) in this process's namespace and returns its output.
func ipCmd(ctx context.Context, args ...string) (string, error) {
	return runTool(ctx, "", "ip", args...)
}

// runTool runs a command to completion with stdin (if not empty) and returns its combined
// output; the error names the command and carries its output.
func runTool(ctx context.Context, stdin, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
