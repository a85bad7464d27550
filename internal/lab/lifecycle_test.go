package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// labNamespaces lists the network namespaces whose name starts with prefix.
func labNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestCloseLeavesNothing: Close removes the namespaces, the processes (the lab's, and
// others started in a host by hand), the links and the directory.
func TestCloseLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip(ErrNotRoot)
	}
	l, err := New(t.Context(), Options{StopGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			l.Close()
		}
	})
	var procs []*Proc
	for _, name := range []string{"a", "b"} {
		h, err := l.AddHost(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, startEcho(t, h))
		// One that ignores SIGTERM, and one started outside Start.
		p, err := h.Start(t.Context(), ProcSpec{Argv: []string{"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"}})
		if err != nil {
			t.Fatal(err)
		}
		lbtest.WaitFor(t, 5*time.Second, "the shell's trap", func() bool { return strings.Contains(p.Log(), "ready") })
		procs = append(procs, p)
		if _, err := h.Run(t.Context(), "sh", "-c", "sleep 600 >/dev/null 2>&1 &"); err != nil {
			t.Fatal(err)
		}
	}
	if got := labNamespaces(t, l.Name()); len(got) != 3 {
		t.Fatalf("namespaces of the lab: %v, want the switch and two hosts", got)
	}
	started := map[int]string{} // pid: its start time, which a reused pid does not share
	for _, h := range l.Hosts() {
		pids, err := h.ns.pids()
		if err != nil {
			t.Fatal(err)
		}
		for _, pid := range pids {
			started[pid] = startTime(pid)
		}
	}
	if len(started) < 6 { // the shells' sleeps come and go
		t.Fatalf("processes on the hosts: %v, want at least 6", started)
	}

	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closed = true
	t.Logf("Close took %v", time.Since(start).Round(time.Millisecond))
	if got := labNamespaces(t, l.Name()); len(got) != 0 {
		t.Errorf("namespaces left after Close: %v", got)
	}
	for pid, start := range started {
		if start != "" && startTime(pid) == start && !zombie(pid) {
			t.Errorf("process %d still runs after Close", pid)
		}
	}
	for _, p := range procs {
		select {
		case <-p.Exited():
		default:
			t.Errorf("%s not reaped after Close", p.Name())
		}
	}
	if _, err := os.Stat(l.Dir()); !os.IsNotExist(err) {
		t.Errorf("lab directory after Close: %v, want it removed", err)
	}
	if links, _ := os.ReadDir("/sys/class/net"); len(links) > 0 {
		for _, ln := range links {
			if ownerPID(ln.Name()) == os.Getpid() {
				t.Errorf("link %s left in the initial namespace", ln.Name())
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.AddHost(t.Context(), "c"); err == nil {
		t.Error("AddHost after Close: got nil error")
	}
}

// startTime is the start time of process pid (field 22 of /proc/PID/stat), or "".
func startTime(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return ""
	}
	return fields[19]
}

// zombie reports whether pid has exited and waits for its parent to reap it (a process
// the shell put in the background is reparented, and its reaper may be slow).
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// TestSweep: a leftover of a dead test process (its namespace with a process still in it,
// its directory) is swept; a lab of a live process is left alone.
func TestSweep(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip(ErrNotRoot)
	}
	ctx := t.Context()
	// A pid that is dead: a process that has exited.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := gone.Process.Pid
	// A live process that is not this one.
	live := exec.Command("sleep", "600")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Process.Kill(); live.Wait() })
	livePID := live.Process.Pid

	tmp := t.TempDir()
	mk := func(pid int) (netns, string, *exec.Cmd) {
		name := fmt.Sprintf("olab-%d-1-host", pid)
		ns := netns(name)
		if _, err := ipCmd(ctx, "netns", "add", name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeNetns(context.Background(), ns) })
		dir := filepath.Join(tmp, fmt.Sprintf("olab-%d-1", pid))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Not a child of the test's Pdeathsig: a process the dead test left running.
		cmd := exec.Command("sleep", "600")
		if err := ns.start(cmd); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return ns, dir, cmd
	}
	deadNS, deadDir, deadProc := mk(deadPID)
	liveNS, liveDir, liveProc := mk(livePID)
	exited := make(chan struct{})
	go func() { deadProc.Wait(); close(exited) }()

	if err := Sweep(ctx, tmp); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if _, err := os.Stat(deadNS.path()); !os.IsNotExist(err) {
		t.Errorf("namespace of dead pid %d: %v, want it removed", deadPID, err)
	}
	if _, err := os.Stat(deadDir); !os.IsNotExist(err) {
		t.Errorf("directory of dead pid %d: %v, want it removed", deadPID, err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Error("the process in the dead lab's namespace still runs")
	}
	if _, err := os.Stat(liveNS.path()); err != nil {
		t.Errorf("namespace of live pid %d: %v, want it kept", livePID, err)
	}
	if _, err := os.Stat(liveDir); err != nil {
		t.Errorf("directory of live pid %d: %v, want it kept", livePID, err)
	}
	if err := liveProc.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("process in the live lab's namespace: %v, want it running", err)
	}
}

// TestNamespaceNeverLeaks: while sockets are made in hosts from many goroutines, every
// other goroutine stays in this process's namespace (it reaches a listener only there),
// and afterwards every thread of the process is back in it.
func TestNamespaceNeverLeaks(t *testing.T) {
	l := ForTest(t, Options{})
	hs := AddHosts(t, l, "a", "b")
	listenEcho(t, hs[1], "7001")
	home, err := statNS("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveEcho(ln)

	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := range 8 {
		wg.Go(func() {
			for range 25 {
				if err := roundTrip(hs[0], addr(hs[1], "7001"), 5*time.Second); err != nil {
					errs <- fmt.Errorf("in host: %w", err)
				}
				if _, err := hs[i%2].Sysctl("net.ipv4.ip_forward"); err != nil {
					errs <- err
				}
			}
		})
		wg.Go(func() {
			for range 50 {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					errs <- fmt.Errorf("at home: %w", err)
					continue
				}
				if err := echoOnce(c, 5*time.Second); err != nil {
					errs <- fmt.Errorf("at home: %w", err)
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		id, err := statNS(filepath.Join("/proc/self/task", task.Name(), "ns", "net"))
		if err == nil && id != home {
			t.Errorf("thread %s is in another network namespace", task.Name())
		}
	}
}
