package pgfailover

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dirPrefix names the directories Create makes under /tmp.
const dirPrefix = "pgfailover-"

// takeLock holds an exclusive flock on dir/lock for the life of the formation, so that
// sweepers in other processes leave dir alone.
func takeLock(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgfailover: lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("pgfailover: %s is in use by another formation: %w", dir, err)
	}
	return f, nil
}

// sweepStale removes what formations of dead processes left in /tmp/pgfailover-*: their
// lock is free, so every process still belonging to one of their nodes is killed, then the
// directory is removed. A directory without a lock file is left for a
// minute, as its creator may be about to take it.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join("/tmp", dirPrefix+"*"))
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
		} else if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close()
			continue // its owner is alive
		}
		nodes, _ := os.ReadDir(d)
		for _, n := range nodes {
			if !n.IsDir() {
				continue
			}
			for range 100 {
				pids := processesOf(filepath.Join(d, n.Name()))
				if len(pids) == 0 {
					break
				}
				for _, p := range pids {
					syscall.Kill(p, syscall.SIGKILL)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if port := socketPortOf(filepath.Join(d, n.Name(), "pgdata")); port > 0 {
				removeStaleSocket(port)
			}
		}
		os.RemoveAll(d)
		if f != nil {
			f.Close()
		}
	}
}

// socketPortOf is the port in pgdata's postmaster.pid (its fourth line), or 0.
func socketPortOf(pgdata string) int {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return 0
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0
	}
	port, _ := strconv.Atoi(strings.TrimSpace(lines[3]))
	return port
}

// removeStaleSocket removes the unix socket of port in SocketDir and its lock file when
// the process the lock names is gone (a SIGKILLed postgres leaves both behind).
func removeStaleSocket(port int) {
	sock := filepath.Join(SocketDir, ".s.PGSQL."+strconv.Itoa(port))
	b, err := os.ReadFile(sock + ".lock")
	if err != nil {
		return
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return
	}
	if err := syscall.Kill(pid, 0); err == nil || err == syscall.EPERM {
		if !zombie(pid) {
			return // a live server owns it
		}
	}
	os.Remove(sock)
	os.Remove(sock + ".lock")
}
