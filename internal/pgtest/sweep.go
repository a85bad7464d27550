package pgtest

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

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
