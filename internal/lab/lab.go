package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Prefix is the lab's network: the benchmarking range of RFC 2544, routed nowhere.
var Prefix = netip.MustParsePrefix("198.18.0.0/24")

// Options configures a lab. The zero value is a lab that needs only ip and nft.
type Options struct {
	// Need lists programs the caller will run on the lab's hosts besides ip and nft, e.g.
	// "keepalived": New fails, naming the Debian package, when one is missing.
	Need []string
	// TmpDir holds the lab's directory (logs, per-host files). Empty: os.TempDir().
	TmpDir string
	// KeepDir keeps the lab's directory after Close (for reading logs by hand).
	KeepDir bool
	// StopGrace is how long Close waits after SIGTERM before SIGKILL. Zero: 3 s.
	StopGrace time.Duration
	// Logf, if set, receives what the lab notes on the way (leftovers it could not sweep).
	Logf func(format string, args ...any)
}

// Lab is a set of hosts, each a network namespace, joined by one bridge that lives in a
// namespace of its own. Its methods are safe for concurrent use.
type Lab struct {
	name string // "olab-PID-N": the switch's namespace and the directory's name
	dir  string
	sw   netns
	opts Options
	pid  int

	mu     sync.Mutex
	hosts  []*Host
	used   map[netip.Addr]bool
	isShut bool
}

// switchTable is the nftables table in the switch's namespace that cuts pairs of ports
// (Partition). ARP still passes, so partitioned hosts see silence, not "no route to host".
const switchTable = `table bridge olab {
	set cut { type ifname . ifname; }
	chain forward {
		type filter hook forward priority 0; policy accept;
		ether type arp accept
		iifname . oifname @cut drop
	}
}
`

// New builds an empty lab: a directory and a switch (a bridge with multicast snooping off,
// so VRRP adverts reach every port). It first sweeps what dead processes' labs left behind.
// It fails with ErrNotRoot when not root, and names the Debian package of a missing tool.
func New(ctx context.Context, opts Options) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if err := checkTools(append([]string{"ip", "nft"}, opts.Need...)); err != nil {
		return nil, err
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := Sweep(ctx, opts.TmpDir); err != nil {
		logf("lab: sweeping leftovers of dead labs: %v", err)
	}
	tmp := opts.TmpDir
	if tmp == "" {
		tmp = os.TempDir()
	}
	pid := os.Getpid()
	dir, err := os.MkdirTemp(tmp, namePrefix+strconv.Itoa(pid)+"-")
	if err != nil {
		return nil, fmt.Errorf("lab: create directory: %w", err)
	}
	// Processes run as other users (postgres) must reach their files below.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("lab: %w", err)
	}
	l := &Lab{
		name: filepath.Base(dir), dir: dir, opts: opts, pid: pid,
		used: map[netip.Addr]bool{},
	}
	l.sw = netns(l.name)
	if err := l.buildSwitch(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Lab) buildSwitch(ctx context.Context) error {
	if _, err := ipCmd(ctx, "netns", "add", string(l.sw)); err != nil {
		return fmt.Errorf("lab: create switch: %w", err)
	}
	for _, kv := range [][2]string{{"net.ipv6.conf.all.disable_ipv6", "1"}, {"net.ipv6.conf.default.disable_ipv6", "1"}} {
		if err := setSysctl(l.sw, kv[0], kv[1]); err != nil {
			return fmt.Errorf("lab: switch: %w", err)
		}
	}
	batch := "link add br0 type bridge mcast_snooping 0 stp_state 0 forward_delay 0\nlink set br0 up\n"
	if _, err := l.sw.run(ctx, batch, "ip", "-batch", "-"); err != nil {
		return fmt.Errorf("lab: create switch bridge: %w", err)
	}
	if _, err := l.sw.run(ctx, switchTable, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("lab: switch nftables table: %w", err)
	}
	return nil
}

// Name is the lab's name, "olab-PID-N": the switch's namespace; host H's is "olab-PID-N-H".
func (l *Lab) Name() string { return l.name }

// Dir is the lab's directory: one subdirectory per host, holding its processes' logs.
func (l *Lab) Dir() string { return l.dir }

// AllocAddr reserves an unused address of Prefix, e.g. for a virtual IP.
func (l *Lab) AllocAddr() (netip.Addr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.allocLocked()
}

func (l *Lab) allocLocked() (netip.Addr, error) {
	last := netip.MustParseAddr("198.18.0.254") // .255 is the broadcast address
	for a := Prefix.Addr().Next(); a.Compare(last) <= 0; a = a.Next() {
		if !l.used[a] {
			l.used[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("lab: no free address left in %s", Prefix)
}

// Hosts returns the lab's hosts in the order they were added.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.hosts)
}

// Host returns the host named name, or nil.
func (l *Lab) Host(name string) *Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.hosts {
		if h.name == name {
			return h
		}
	}
	return nil
}

// Holders returns the hosts whose eth0 carries addr and is up: who answers for addr on the
// lab's network (a crashed host's link is down, so it holds nothing). An address on lo does
// not count.
func (l *Lab) Holders(addr netip.Addr) ([]*Host, error) {
	var out []*Host
	for _, h := range l.Hosts() {
		ok, err := h.Holds(addr)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, h)
		}
	}
	return out, nil
}

// Partition cuts every packet between hosts a and b, both ways, in the switch; ARP still
// passes, so each sees the other fall silent (connects time out). Other pairs are not
// affected. Partitioning a cut pair does nothing.
func (l *Lab) Partition(ctx context.Context, a, b *Host) error {
	if err := l.pair(a, b); err != nil {
		return err
	}
	script := fmt.Sprintf("add element bridge olab cut { %q . %q, %q . %q }\n", a.port, b.port, b.port, a.port)
	if _, err := l.sw.run(ctx, script, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("lab: partition %s from %s: %w", a.name, b.name, err)
	}
	return nil
}

// Heal undoes Partition(a, b). Healing a pair that is not cut does nothing.
func (l *Lab) Heal(ctx context.Context, a, b *Host) error {
	if err := l.pair(a, b); err != nil {
		return err
	}
	elems := fmt.Sprintf("{ %q . %q, %q . %q }", a.port, b.port, b.port, a.port)
	// Adding first makes the delete succeed whether or not the pair was cut.
	script := "add element bridge olab cut " + elems + "\ndelete element bridge olab cut " + elems + "\n"
	if _, err := l.sw.run(ctx, script, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("lab: heal %s and %s: %w", a.name, b.name, err)
	}
	return nil
}

// pair checks that a and b are two hosts of this lab.
func (l *Lab) pair(a, b *Host) error {
	switch {
	case a.lab != l || b.lab != l:
		return fmt.Errorf("lab: %s and %s are not both hosts of lab %s", a.name, b.name, l.name)
	case a == b:
		return fmt.Errorf("lab: %s cannot be cut from itself", a.name)
	}
	return nil
}

// Close stops every process on every host (SIGTERM, then SIGKILL after Options.StopGrace),
// deletes the hosts' and the switch's namespaces, and removes the lab's directory unless
// Options.KeepDir. Sockets the caller opened in a host (Dial, Listen) are the caller's to
// close. Close is idempotent.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.isShut {
		l.mu.Unlock()
		return nil
	}
	l.isShut = true
	hosts := slices.Clone(l.hosts)
	l.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	grace := l.opts.StopGrace
	if grace <= 0 {
		grace = 3 * time.Second
	}
	var errs []error
	var wg sync.WaitGroup
	errc := make(chan error, len(hosts))
	for _, h := range hosts {
		wg.Go(func() { errc <- h.shutdown(ctx, grace) })
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		errs = append(errs, err)
	}
	if _, err := os.Stat(l.sw.path()); err == nil {
		if err := removeNetns(ctx, l.sw); err != nil {
			errs = append(errs, err)
		}
	}
	if !l.opts.KeepDir {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, fmt.Errorf("lab: remove directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// shutdown stops the host's processes and deletes its namespace.
func (h *Host) shutdown(ctx context.Context, grace time.Duration) error {
	if _, err := os.Stat(h.ns.path()); err != nil {
		return nil
	}
	for _, p := range h.Procs() {
		p.Signal(p.stopSig)
	}
	h.ns.signalAll(syscall.SIGTERM)
	h.ns.signalAll(syscall.SIGCONT) // a frozen process acts on SIGTERM only once continued
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if pids, err := h.ns.pids(); err != nil || len(pids) == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	err := removeNetns(ctx, h.ns)
	for _, p := range h.Procs() {
		p.Kill() // one still outside the namespace (EntersItself)
	}
	h.waitProcs(ctx)
	return err
}
