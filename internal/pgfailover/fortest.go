package pgfailover

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// ForTest creates a formation for a test and closes it at cleanup; if the test failed, it
// first logs the end of every node's log. It skips the test when not root (the nodes run as
// the postgres user and put their sockets in SocketDir), and fails it when root but
// pg_autoctl is missing (naming the Debian packages) or the formation does not come up.
func ForTest(t testing.TB, opts Options) *Formation {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("pgfailover: needs root: pg_autoctl and postgres run as the postgres user, with their sockets in " + SocketDir)
	}
	if _, _, err := CheckTools(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f, err := Create(ctx, opts)
	if err != nil {
		if errors.Is(err, ErrNoAutoctl) {
			t.Fatal(err)
		}
		t.Fatalf("pgfailover: create formation: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			f.LogTails(t.Logf)
		}
		if err := f.Close(); err != nil {
			t.Errorf("pgfailover: close formation: %v", err)
		}
	})
	return f
}

// LogTails passes the end of each node's pg_autoctl log to logf.
func (f *Formation) LogTails(logf func(format string, args ...any)) {
	for _, n := range append([]*Node{f.monitor}, f.nodes...) {
		if n != nil {
			logf("--- node %s: %s\n%s", n.Name(), n.LogPath(), tail(readFile(n.LogPath()), 3000))
		}
	}
}

// LoopbackOptions are Options for a monitor and two data nodes on 127.0.0.1, each on a
// port that was free a moment ago.
func LoopbackOptions(t testing.TB) Options {
	t.Helper()
	// All three listeners stay open until the last is chosen, so the ports differ.
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	port := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pgfailover: find a free port: %v", err)
		}
		lns = append(lns, ln)
		return ln.Addr().(*net.TCPAddr).Port
	}
	return Options{
		Monitor: NodeSpec{Name: "monitor", Addr: "127.0.0.1", Port: port()},
		Nodes: []NodeSpec{
			{Name: "node1", Addr: "127.0.0.1", Port: port()},
			{Name: "node2", Addr: "127.0.0.1", Port: port()},
		},
	}
}
