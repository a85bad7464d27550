package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"outrigger/internal/lbtest"
)

// TestHostsTalk: hosts reach each other both ways, in-process and through a process, and
// reach nothing off the bridge.
func TestHostsTalk(t *testing.T) {
	l := ForTest(t, Options{})
	hs := AddHosts(t, l, "a", "b")
	a, b := hs[0], hs[1]
	if a.Addr() == b.Addr() || !Prefix.Contains(a.Addr()) || !Prefix.Contains(b.Addr()) {
		t.Fatalf("addresses %s and %s: want two different ones in %s", a.Addr(), b.Addr(), Prefix)
	}
	listenEcho(t, a, "7001")
	startEcho(t, b)
	if err := roundTrip(a, addr(b, "7000"), 5*time.Second); err != nil {
		t.Errorf("a to b's echo process: %v", err)
	}
	if err := roundTrip(b, addr(a, "7001"), 5*time.Second); err != nil {
		t.Errorf("b to a's in-process echo: %v", err)
	}
	// No route off the bridge: anything else is unreachable at once.
	if err := roundTrip(a, "192.0.2.1:80", 2*time.Second); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("a to 192.0.2.1 (off the lab): got %v, want ENETUNREACH", err)
	}
	routes, err := a.Run(t.Context(), "ip", "-4", "route", "show", "table", "all", "type", "unicast")
	if err != nil {
		t.Fatal(err)
	}
	if want := "198.18.0.0/24 dev eth0"; !strings.HasPrefix(strings.TrimSpace(routes), want) || strings.Count(strings.TrimSpace(routes), "\n") != 0 {
		t.Errorf("a's unicast routes:\n%s\nwant only %s", routes, want)
	}
	if _, err := a.Run(t.Context(), "false"); err == nil {
		t.Error("Run(false): got nil error, want the exit status")
	}
}

// TestStartAsUser: a process started as another user runs with that user's id, and its
// output lands in its log.
func TestStartAsUser(t *testing.T) {
	l := ForTest(t, Options{})
	h := AddHosts(t, l, "a")[0]
	p, err := h.Start(t.Context(), ProcSpec{Argv: []string{"sh", "-c", `echo "uid $(id -u)"; exec sleep 600`}, User: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	lbtest.WaitFor(t, 10*time.Second, "the helper's first line", func() bool { return strings.Contains(p.Log(), "uid") })
	if !strings.Contains(p.Log(), "uid 65534") {
		t.Errorf("log of a process started as nobody: %q, want uid 65534", p.Log())
	}
	if p.Name() != "sh" {
		t.Errorf("default name: got %q, want the program's base name", p.Name())
	}
	if err := p.Stop(t.Context()); err == nil {
		t.Error("Stop: got nil, want the SIGTERM exit status")
	}
}

// TestCrashAndBoot: after Crash, every process of the host is gone, a peer's connect gets
// no answer, and addresses its processes added are gone after Boot, which restores the
// host's own.
func TestCrashAndBoot(t *testing.T) {
	l := ForTest(t, Options{})
	hs := AddHosts(t, l, "a", "b")
	a, b := hs[0], hs[1]
	echo := startEcho(t, b)
	vip, err := l.AllocAddr()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Run(t.Context(), "ip", "addr", "add", vip.String()+"/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Run(t.Context(), "ip", "addr", "add", "198.18.0.250/32", "dev", "lo"); err != nil {
		t.Fatal(err)
	}
	if hold, _ := l.Holders(vip); len(hold) != 1 || hold[0] != b {
		t.Fatalf("holders of %s: %v, want b", vip, hold)
	}

	for range 2 { // idempotent
		if err := b.Crash(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-echo.Exited():
	default:
		t.Error("b's process still runs after Crash")
	}
	if pids, _ := b.ns.pids(); len(pids) != 0 {
		t.Errorf("processes left on b after Crash: %v", pids)
	}
	if err := roundTrip(a, addr(b, "7000"), 500*time.Millisecond); err == nil {
		t.Error("a reached b's echo after Crash")
	}
	if hold, _ := l.Holders(vip); len(hold) != 0 {
		t.Errorf("holders of %s with b crashed: %v, want none", vip, hold)
	}
	if _, err := b.Start(t.Context(), ProcSpec{Argv: []string{"true"}}); err == nil {
		t.Error("Start on a crashed host: got nil error")
	}

	for range 2 {
		if err := b.Boot(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	addrs, err := b.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs["eth0"]; len(got) != 1 || got[0] != b.prefix() {
		t.Errorf("b's eth0 after Boot: %v, want only %s", got, b.prefix())
	}
	if got := addrs["lo"]; len(got) != 1 || got[0] != netip.MustParsePrefix("127.0.0.1/8") {
		t.Errorf("b's lo after Boot: %v, want only 127.0.0.1/8", got)
	}
	startEcho(t, b)
	if err := roundTrip(a, addr(b, "7000"), 5*time.Second); err != nil {
		t.Errorf("a to b after Boot: %v", err)
	}
}

// TestFreeze: a frozen server's kernel completes the handshake, but nothing answers
// until Thaw.
func TestFreeze(t *testing.T) {
	l := ForTest(t, Options{})
	hs := AddHosts(t, l, "a", "b")
	a, b := hs[0], hs[1]
	startEcho(t, b)
	for range 2 {
		if err := b.Freeze(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	c, err := a.DialContext(t.Context(), "tcp", addr(b, "7000"))
	if err != nil {
		t.Fatalf("connect to a frozen server: %v, want the kernel to complete it", err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- echoOnce(c, 10*time.Second) }()
	select {
	case err := <-done:
		t.Fatalf("a frozen server answered: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := b.Thaw(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("answer after Thaw: %v", err)
	}
}

// TestBlackhole: peers of a blackholed host get silence (timeouts, no reset), established
// connections stall and resume after Unblackhole.
func TestBlackhole(t *testing.T) {
	l := ForTest(t, Options{})
	hs := AddHosts(t, l, "a", "b")
	a, b := hs[0], hs[1]
	listenEcho(t, a, "7001")
	listenEcho(t, b, "7002")
	startEcho(t, b)
	est, err := a.DialContext(t.Context(), "tcp", addr(b, "7000"))
	if err != nil {
		t.Fatal(err)
	}
	defer est.Close()
	if err := echoOnce(est, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	for range 2 {
		if err := b.Blackhole(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if err := roundTrip(a, addr(b, "7000"), 500*time.Millisecond); !isTimeout(err) {
		t.Errorf("connect to a blackholed host: got %v, want a timeout", err)
	}
	if err := roundTrip(b, addr(a, "7001"), 500*time.Millisecond); !isTimeout(err) {
		t.Errorf("connect from a blackholed host: got %v, want a timeout", err)
	}
	if err := echoOnce(est, 500*time.Millisecond); !isTimeout(err) {
		t.Errorf("established connection to a blackholed host: got %v, want it to stall", err)
	}
	for _, to := range []string{"127.0.0.1:7002", addr(b, "7002")} {
		if err := roundTrip(b, to, 5*time.Second); err != nil {
			t.Errorf("blackholed host to itself at %s: %v, want loopback to work", to, err)
		}
	}

	for range 2 {
		if err := b.Unblackhole(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if err := roundTrip(a, addr(b, "7000"), 5*time.Second); err != nil {
		t.Errorf("connect after Unblackhole: %v", err)
	}
	// The stalled line is retransmitted and answered; read it, then a new one.
	if err := echoOnce(est, 10*time.Second); err != nil {
		t.Errorf("established connection after Unblackhole: %v", err)
	}
}

// TestPartition: a partition cuts exactly one pair, both ways, and Heal restores it.
func TestPartition(t *testing.T) {
	l := ForTest(t, Options{})
	hs := AddHosts(t, l, "a", "b", "c")
	a, b, c := hs[0], hs[1], hs[2]
	for _, h := range hs {
		listenEcho(t, h, "7001")
	}
	for range 2 {
		if err := l.Partition(t.Context(), a, b); err != nil {
			t.Fatal(err)
		}
	}
	check := func(from, to *Host, wantCut bool) {
		t.Helper()
		if wantCut {
			if err := roundTrip(from, addr(to, "7001"), 500*time.Millisecond); !isTimeout(err) {
				t.Errorf("%s to %s: got %v, want a timeout (partitioned)", from.name, to.name, err)
			}
		} else if err := roundTrip(from, addr(to, "7001"), 5*time.Second); err != nil {
			t.Errorf("%s to %s: %v", from.name, to.name, err)
		}
	}
	check(a, b, true)
	check(b, a, true)
	check(a, c, false)
	check(c, b, false)
	check(b, c, false)
	for range 2 {
		if err := l.Heal(t.Context(), a, b); err != nil {
			t.Fatal(err)
		}
	}
	check(a, b, false)
	check(b, a, false)
}

// TestSysctl: sysctls are per host, and only net.* keys are accepted.
func TestSysctl(t *testing.T) {
	l := ForTest(t, Options{})
	hs := AddHosts(t, l, "a", "b")
	const key = "net.ipv4.conf.eth0.arp_ignore"
	if err := hs[0].SetSysctl(key, "1"); err != nil {
		t.Fatal(err)
	}
	if v, err := hs[0].Sysctl(key); err != nil || v != "1" {
		t.Errorf("a's %s: got %q, %v, want 1", key, v, err)
	}
	if v, err := hs[1].Sysctl(key); err != nil || v != "0" {
		t.Errorf("b's %s: got %q, %v, want 0 (untouched)", key, v, err)
	}
	if err := hs[0].SetSysctl("kernel.pid_max", "1"); err == nil {
		t.Error("SetSysctl(kernel.pid_max): got nil, want it refused")
	}
}

// TestPostgresOnHost: a PostgreSQL server on one host answers a client on another over
// TCP, and the test over the unix socket; a crash of its host cuts it off, and it starts
// again after Boot.
func TestPostgresOnHost(t *testing.T) {
	l := ForTest(t, Options{})
	hs := AddHosts(t, l, "db", "app")
	db, app := hs[0], hs[1]
	c := PostgresForTest(t, db, 5432)
	query := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		cfg, err := pgx.ParseConfig(c.DSN("postgres"))
		if err != nil {
			return err
		}
		cfg.DialFunc = app.DialContext
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		var addr string
		if err := conn.QueryRow(ctx, "SELECT host(inet_client_addr())").Scan(&addr); err != nil {
			return err
		}
		if addr != app.Addr().String() {
			return fmt.Errorf("server sees client %s, want %s", addr, app.Addr())
		}
		return nil
	}
	if !strings.Contains(c.DSN("x"), db.Addr().String()+":5432") {
		t.Errorf("DSN %s: want the host's address", c.DSN("x"))
	}
	if err := query(10 * time.Second); err != nil {
		t.Fatalf("from app over TCP: %v", err)
	}
	conn, err := pgx.Connect(t.Context(), c.SocketDSN("postgres"))
	if err != nil {
		t.Fatalf("from the test over the unix socket: %v", err)
	}
	conn.Close(t.Context())

	if err := db.Crash(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := query(500 * time.Millisecond); err == nil {
		t.Error("query with the database host crashed: got nil error")
	}
	if err := db.Boot(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatalf("start again after Boot: %v", err)
	}
	if err := query(10 * time.Second); err != nil {
		t.Errorf("after Boot: %v", err)
	}
}

// TestAllocAddr: every address of Prefix but the network and broadcast ones, once each.
func TestAllocAddr(t *testing.T) {
	l := &Lab{used: map[netip.Addr]bool{}}
	seen := map[netip.Addr]bool{}
	for range 254 {
		a, err := l.AllocAddr()
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] || !Prefix.Contains(a) || a == Prefix.Addr() || a == netip.MustParseAddr("198.18.0.255") {
			t.Fatalf("AllocAddr gave %s", a)
		}
		seen[a] = true
	}
	if a, err := l.AllocAddr(); err == nil {
		t.Errorf("255th AllocAddr: got %s, want an error", a)
	}
}

// TestNotRoot: without root, New says why and ForTest skips.
func TestNotRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs only without root")
	}
	if _, err := New(t.Context(), Options{}); !errors.Is(err, ErrNotRoot) {
		t.Errorf("New without root: %v, want ErrNotRoot", err)
	}
}

// TestMissingTool: a missing program is named with its Debian package.
func TestMissingTool(t *testing.T) {
	err := checkTools([]string{"ip", "keepalived-that-is-not-there", "pg_autoctl-not"})
	if err == nil || !strings.Contains(err.Error(), "keepalived-that-is-not-there") {
		t.Errorf("checkTools: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	err = checkTools([]string{"keepalived", "nft"})
	for _, want := range []string{"keepalived (apt-get install keepalived)", "nft (apt-get install nftables)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkTools with an empty PATH: %v, want it to name %q", err, want)
		}
	}
}

// TestSetDefinitions: definitions are replaced whole, others kept, unknown names refused.
func TestSetDefinitions(t *testing.T) {
	conf := "$SELF=10.0.0.2\n$SELFISH=x\n$VIP=203.0.113.10\nunicast_src_ip $SELF\n"
	got, err := SetDefinitions(conf, map[string]string{"SELF": "198.18.0.2", "VIP": "198.18.0.9"})
	want := "$SELF=198.18.0.2\n$SELFISH=x\n$VIP=198.18.0.9\nunicast_src_ip $SELF\n"
	if err != nil || got != want {
		t.Errorf("SetDefinitions: got %q, %v; want %q", got, err, want)
	}
	if _, err := SetDefinitions(conf, map[string]string{"PEER": "x"}); err == nil || !strings.Contains(err.Error(), "$PEER") {
		t.Errorf("SetDefinitions of an undefined name: %v, want an error naming it", err)
	}
}
