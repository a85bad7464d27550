package lab

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// ForTest builds a lab for a test and removes it at the test's cleanup. It skips the test,
// saying why, when not root; as root, a lab that cannot be built (a tool missing: the
// error names its Debian package) fails the test. When the test has failed, the cleanup
// first logs the tail of every process's log, host by host. Set LAB_KEEP=1 to keep the
// lab's directory (its path is logged).
func ForTest(t testing.TB, opts Options) *Lab {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	if os.Getenv("LAB_KEEP") == "1" {
		opts.KeepDir = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := New(ctx, opts)
	if errors.Is(err, ErrNotRoot) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			l.DumpLogs(t.Logf)
		}
		if err := l.Close(); err != nil {
			t.Errorf("lab: close: %v", err)
		}
		if opts.KeepDir {
			t.Logf("lab: kept %s", l.Dir())
		}
	})
	return l
}

// DumpLogs writes the last 8 KiB of every process's log to logf, host by host.
func (l *Lab) DumpLogs(logf func(format string, args ...any)) {
	for _, h := range l.Hosts() {
		for _, p := range h.Procs() {
			logf("lab: %s on %s (pid %d), %s:\n%s", p.name, h.name, p.Pid(), p.LogPath(), tailFile(p.LogPath(), 8<<10))
		}
	}
}

// AddHosts adds a host per name to a lab made by ForTest, failing the test on error.
func AddHosts(t testing.TB, l *Lab, names ...string) []*Host {
	t.Helper()
	hosts := make([]*Host, 0, len(names))
	for _, name := range names {
		h, err := l.AddHost(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
	}
	return hosts
}
