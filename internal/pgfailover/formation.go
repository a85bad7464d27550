package pgfailover

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SocketDir is where every node's PostgreSQL puts its unix socket: Debian's compiled-in
// default, which pg_autoctl does not change (it starts postgres without -k).
const SocketDir = "/var/run/postgresql"

// FormationName is the pg_auto_failover formation the data nodes join.
const FormationName = "default"

// Packages are the Debian packages that provide pg_autoctl and the monitor's extension.
const Packages = "postgresql-15-auto-failover pg-auto-failover-cli"

// ErrNoAutoctl means pg_autoctl, or a PostgreSQL with the pgautofailover extension, is
// not installed.
var ErrNoAutoctl = errors.New("pgfailover: pg_autoctl or the pgautofailover extension is not installed: apt-get install -y " + Packages)

// Options configure Create.
type Options struct {
	// Monitor is the monitor node; Nodes are the data nodes (at least two), created in
	// this order: the first becomes the primary.
	Monitor NodeSpec
	Nodes   []NodeSpec
	// Dir holds the nodes that have no Dir of their own. Empty: a new /tmp/pgfailover-*
	// directory, removed by Close.
	Dir string
	// Database is the application database that pg_autoctl creates (--dbname); default
	// "app". CreateOwner makes a role its owner.
	Database string
	// Network, a CIDR such as "198.18.0.0/24", may reach the monitor as autoctl_node
	// (pg_autoctl trusts only the monitor's own network) when the nodes are on other
	// hosts. Empty: nothing is added.
	Network string
	// Timeouts are applied on the monitor and every keeper; nil means Tuned.
	Timeouts *Timeouts
	// Settings are PostgreSQL settings for every data node (archive_mode, for instance),
	// written to postgresql.auto.conf before the node first starts.
	Settings map[string]string
	// User runs every process when this process is root; default "postgres".
	User string
	// Secure sets the formation up as OPERATIONS.md does in production: TLS
	// (--ssl-self-signed) and scram-sha-256 passwords between the nodes, and no trust
	// records for TCP from loopback. Nil: --auth trust --no-ssl.
	Secure *Security
}

// Security holds the passwords of pg_auto_failover's roles in a Secure formation.
type Security struct {
	// MonitorPassword is autoctl_node's: the data nodes' keepers log in to the monitor.
	MonitorPassword string
	// ReplicationPassword is pgautofailover_replicator's: a standby streams from the
	// primary, and a rejoining node rewinds from it (pg_rewind), with it.
	ReplicationPassword string
}

// Formation is a running monitor and its data nodes.
type Formation struct {
	opts     Options
	timeouts Timeouts
	autoctl  string // path of pg_autoctl
	binDir   string // PostgreSQL's bin directory, first on the nodes' PATH
	cred     *syscall.Credential
	dir      string // Options.Dir or our own temp dir
	ownDir   bool
	lock     *os.File
	monitor  *Node
	nodes    []*Node
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9_-]{1,63}$`)
	settingRE = regexp.MustCompile(`^[a-z_][a-z0-9_.]*$`)
	// passwordRE are passwords pg_autoctl can put in a connection string unquoted.
	passwordRE = regexp.MustCompile(`^[A-Za-z0-9._~+/=-]{16,}$`)
)

func (o *Options) validate() error {
	var errs []error
	if len(o.Nodes) < 2 {
		errs = append(errs, fmt.Errorf("%d data node(s): want at least 2", len(o.Nodes)))
	}
	names, ports := map[string]bool{}, map[int]bool{}
	for i, s := range append([]NodeSpec{o.Monitor}, o.Nodes...) {
		what := "monitor"
		if i > 0 {
			what = fmt.Sprintf("data node %d", i)
		}
		if !nameRE.MatchString(s.Name) {
			errs = append(errs, fmt.Errorf("%s: name %q: want [a-z0-9_-]{1,63}", what, s.Name))
		} else if names[s.Name] {
			errs = append(errs, fmt.Errorf("%s: name %q is taken", what, s.Name))
		}
		names[s.Name] = true
		if _, err := netip.ParseAddr(s.Addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: addr %q: want an IP address", what, s.Addr))
		}
		if s.Port <= 0 || s.Port > 65535 {
			errs = append(errs, fmt.Errorf("%s: port %d: want 1-65535", what, s.Port))
		} else if ports[s.Port] {
			errs = append(errs, fmt.Errorf("%s: port %d is taken: every node's unix socket is in %s, so ports must differ even across hosts", what, s.Port, SocketDir))
		}
		ports[s.Port] = true
		if s.CandidatePriority < 0 || s.CandidatePriority > 100 {
			errs = append(errs, fmt.Errorf("%s: candidate priority %d: want 0-100", what, s.CandidatePriority))
		}
	}
	if o.Secure != nil {
		for what, pw := range map[string]string{"monitor": o.Secure.MonitorPassword, "replication": o.Secure.ReplicationPassword} {
			if !passwordRE.MatchString(pw) {
				// pg_autoctl 2.0 writes the replication password into primary_conninfo
				// unquoted: a space, quote or backslash breaks replication.
				errs = append(errs, fmt.Errorf("secure: the %s password must be 16 or more of [A-Za-z0-9._~+/=-] (e.g. openssl rand -hex 24): pg_autoctl does not quote it", what))
			}
		}
	}
	if o.Network != "" {
		if _, err := netip.ParsePrefix(o.Network); err != nil {
			errs = append(errs, fmt.Errorf("network %q: want a CIDR", o.Network))
		}
	}
	if o.Timeouts != nil {
		if err := o.Timeouts.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("timeouts: %w", err))
		}
	}
	for k := range o.Settings {
		if !settingRE.MatchString(k) {
			errs = append(errs, fmt.Errorf("setting %q: not a PostgreSQL setting name", k))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pgfailover: %w", err)
	}
	return nil
}

// CheckTools reports ErrNoAutoctl unless pg_autoctl and a PostgreSQL server with the
// pgautofailover extension are installed; else it returns their paths.
func CheckTools() (autoctl, binDir string, err error) {
	autoctl, err = exec.LookPath("pg_autoctl")
	if err != nil {
		return "", "", ErrNoAutoctl
	}
	// The highest PostgreSQL that has both the server and the monitor's extension.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best := -1
	for _, d := range dirs {
		ver := filepath.Base(filepath.Dir(d))
		v, err := strconv.Atoi(ver)
		if err != nil || v <= best {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err != nil {
			continue
		}
		if _, err := os.Stat("/usr/share/postgresql/" + ver + "/extension/pgautofailover.control"); err != nil {
			continue
		}
		best, binDir = v, d
	}
	if binDir == "" {
		return "", "", ErrNoAutoctl
	}
	return autoctl, binDir, nil
}

// Create creates and starts a formation: the monitor (tuned), then each data node in turn,
// and returns once one node is primary and every other secondary, with synchronous
// replication. On error it removes what it made.
func Create(ctx context.Context, opts Options) (*Formation, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	f := &Formation{opts: opts, timeouts: Tuned}
	if opts.Timeouts != nil {
		f.timeouts = *opts.Timeouts
	}
	if f.opts.Database == "" {
		f.opts.Database = "app"
	}
	var err error
	if f.autoctl, f.binDir, err = CheckTools(); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		name := opts.User
		if name == "" {
			name = "postgres"
		}
		if f.cred, err = credential(name); err != nil {
			return nil, fmt.Errorf("pgfailover: %w", err)
		}
	}
	if err := f.ensureSocketDir(); err != nil {
		return nil, err
	}
	sweepStale()
	if err := f.makeDir(); err != nil {
		return nil, err
	}
	if err := f.start(ctx); err != nil {
		var logs strings.Builder
		f.LogTails(func(format string, args ...any) {
			fmt.Fprintf(&logs, "\n"+format, args...)
		})
		err = fmt.Errorf("%w%s", err, logs.String())
		if cerr := f.Close(); cerr != nil {
			err = fmt.Errorf("%w (and cleaning up: %v)", err, cerr)
		}
		return nil, err
	}
	return f, nil
}

// start creates and runs the monitor and the data nodes, and waits until they are stable.
func (f *Formation) start(ctx context.Context) error {
	opts := f.opts
	f.monitor = f.newNode(opts.Monitor, true)
	for _, s := range opts.Nodes {
		f.nodes = append(f.nodes, f.newNode(s, false))
	}
	if err := f.createMonitor(ctx); err != nil {
		return err
	}
	for i, n := range f.nodes {
		if err := f.createDataNode(ctx, n); err != nil {
			return err
		}
		if i == 0 {
			// The next node's create clones this one, once it is the primary.
			if _, err := f.WaitFor(ctx, "node "+n.Name()+" to run alone", func(s State) bool {
				ns, ok := s.Node(n.Name())
				return ok && ns.Reported == "single" && ns.Assigned == "single"
			}); err != nil {
				return err
			}
			if sec := opts.Secure; sec != nil {
				// Before the next node clones this one (pg_basebackup logs in with it).
				if err := f.waitSQL(ctx, n, "postgres"); err != nil {
					return err
				}
				if err := setPassword(ctx, n, "postgres", "pgautofailover_replicator", sec.ReplicationPassword); err != nil {
					return err
				}
			}
		}
	}
	if _, err := f.WaitStable(ctx); err != nil {
		return err
	}
	return f.AddHBA(ctx, f.rewindHBA()...)
}

// rewindHBA are the pg_hba.conf records a data node needs so that the others can pg_rewind
// from it when they rejoin after a failover. pg_autoctl 2.0 lets pgautofailover_replicator
// into the application database only, but runs pg_rewind against the database postgres:
// without these records every rejoin fails its rewind and falls back to copying the whole
// database (pg_basebackup).
func (f *Formation) rewindHBA() []string {
	typ, method := "host", "trust"
	if f.opts.Secure != nil {
		typ, method = "hostssl", "scram-sha-256"
	}
	var lines []string
	for _, n := range f.nodes {
		line := fmt.Sprintf("%s postgres pgautofailover_replicator %s %s", typ, hostCIDR(n.Addr()), method)
		if !slices.Contains(lines, line) {
			lines = append(lines, line)
		}
	}
	return lines
}

// hostCIDR is addr as a single-host CIDR.
func hostCIDR(addr string) string {
	a := netip.MustParseAddr(addr)
	return netip.PrefixFrom(a, a.BitLen()).String()
}

func (f *Formation) newNode(s NodeSpec, monitor bool) *Node {
	dir := s.Dir
	if dir == "" {
		dir = filepath.Join(f.dir, s.Name)
	}
	return &Node{f: f, spec: s, monitor: monitor, dir: dir}
}

func (f *Formation) createMonitor(ctx context.Context) error {
	m := f.monitor
	if err := m.prepare(); err != nil {
		return err
	}
	args := append([]string{"create", "monitor", "--pgdata", m.PGData(), "--pgport", strconv.Itoa(m.Port()),
		"--hostname", m.Addr()}, f.securityArgs()...)
	if _, err := m.autoctl(ctx, args...); err != nil {
		return err
	}
	if err := f.tightenHBA(m); err != nil {
		return err
	}
	if f.opts.Network != "" {
		// pg_autoctl lets autoctl_node in from the monitor's own network only.
		typ, method := "host", "trust"
		if f.opts.Secure != nil {
			typ, method = "hostssl", "scram-sha-256"
		}
		line := fmt.Sprintf("%s pg_auto_failover autoctl_node %s %s", typ, f.opts.Network, method)
		if err := appendLines(filepath.Join(m.PGData(), "pg_hba.conf"), []string{line}); err != nil {
			return fmt.Errorf("monitor pg_hba.conf: %w", err)
		}
	}
	if err := m.Run(ctx); err != nil {
		return err
	}
	if err := f.waitSQL(ctx, m, "pg_auto_failover"); err != nil {
		return err
	}
	if f.opts.Secure != nil {
		if err := setPassword(ctx, m, "pg_auto_failover", "autoctl_node", f.opts.Secure.MonitorPassword); err != nil {
			return err
		}
	}
	return f.tuneMonitor(ctx)
}

// securityArgs are pg_autoctl create's authentication and TLS flags.
func (f *Formation) securityArgs() []string {
	if f.opts.Secure != nil {
		return []string{"--auth", "scram-sha-256", "--ssl-self-signed"}
	}
	return []string{"--auth", "trust", "--no-ssl"}
}

// loopbackTrust matches the records initdb writes for TCP from loopback ("host all all
// 127.0.0.1/32 trust" and the replication and ::1 ones), which would let any local user
// in as anyone, and would win over pg_auto_failover's password records on loopback.
var loopbackTrust = regexp.MustCompile(`(?m)^host\s+(all|replication)\s+all\s+(127\.0\.0\.1/32|::1/128)\s+trust\s*\n`)

// tightenHBA removes loopbackTrust's records from n's pg_hba.conf in a Secure formation.
func (f *Formation) tightenHBA(n *Node) error {
	if f.opts.Secure == nil {
		return nil
	}
	p := filepath.Join(n.PGData(), "pg_hba.conf")
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name(), err)
	}
	if err := os.WriteFile(p, loopbackTrust.ReplaceAll(b, nil), 0o600); err != nil {
		return fmt.Errorf("node %s: %w", n.Name(), err)
	}
	return nil
}

func (f *Formation) createDataNode(ctx context.Context, n *Node) error {
	if err := n.prepare(); err != nil {
		return err
	}
	args := []string{"create", "postgres", "--pgdata", n.PGData(), "--pgport", strconv.Itoa(n.Port()),
		"--listen", n.Addr(), "--hostname", n.Addr(), "--name", n.Name(), "--dbname", f.opts.Database}
	args = append(args, f.securityArgs()...)
	args = append(args, "--monitor", f.MonitorURI())
	if p := n.spec.CandidatePriority; p > 0 {
		args = append(args, "--candidate-priority", strconv.Itoa(p))
	}
	if _, err := n.autoctl(ctx, args...); err != nil {
		return err
	}
	if f.opts.Secure != nil {
		// The replication password: a node that rejoins as a standby needs it.
		if _, err := n.autoctl(ctx, "config", "set", "--pgdata", n.PGData(), "replication.password", f.opts.Secure.ReplicationPassword); err != nil {
			return err
		}
		if err := f.tightenHBA(n); err != nil {
			return err
		}
	}
	if _, err := n.autoctl(ctx, f.timeouts.KeeperArgs(n.PGData())...); err != nil {
		return err
	}
	if err := writeSettings(n.PGData(), f.opts.Settings); err != nil {
		return fmt.Errorf("node %s: %w", n.Name(), err)
	}
	return n.Run(ctx)
}

// MonitorURI is the monitor's connection string as the data nodes use it. In a Secure
// formation the password is not in it (pg_autoctl would keep it in its configuration file)
// but in each node's ~/.pgpass, as OPERATIONS.md has it.
func (f *Formation) MonitorURI() string {
	mode := "disable"
	if f.opts.Secure != nil {
		mode = "require"
	}
	return "postgres://autoctl_node@" + f.monitor.HostPort() + "/pg_auto_failover?sslmode=" + mode
}

// Timeouts are the timeouts the formation runs with.
func (f *Formation) Timeouts() Timeouts { return f.timeouts }

// Database is the application database's name.
func (f *Formation) Database() string { return f.opts.Database }

// Monitor is the monitor node.
func (f *Formation) Monitor() *Node { return f.monitor }

// Nodes are the data nodes, in creation order.
func (f *Formation) Nodes() []*Node { return append([]*Node(nil), f.nodes...) }

// Node is the data node or monitor called name, or nil.
func (f *Formation) Node(name string) *Node {
	for _, n := range append([]*Node{f.monitor}, f.nodes...) {
		if n != nil && n.Name() == name {
			return n
		}
	}
	return nil
}

// Close stops every node (data nodes first) and removes every directory Create made. It
// is safe to call more than once.
func (f *Formation) Close() error {
	var errs []error
	for _, n := range append(append([]*Node(nil), f.nodes...), f.monitor) {
		if n == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := n.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
		removeStaleSocket(n.Port())
		if err := os.RemoveAll(n.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove node %s: %w", n.Name(), err))
		}
	}
	if f.lock != nil {
		f.lock.Close()
		f.lock = nil
	}
	if f.ownDir && f.dir != "" {
		if err := os.RemoveAll(f.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", f.dir, err))
		}
	}
	return errors.Join(errs...)
}

func (f *Formation) makeDir() error {
	if f.opts.Dir == "" {
		dir, err := os.MkdirTemp("/tmp", dirPrefix)
		if err != nil {
			return fmt.Errorf("pgfailover: %w", err)
		}
		f.dir, f.ownDir = dir, true
	} else {
		dir, err := filepath.Abs(f.opts.Dir)
		if err != nil {
			return fmt.Errorf("pgfailover: dir %q: %w", f.opts.Dir, err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("pgfailover: %w", err)
		}
		f.dir = dir
	}
	if err := os.Chmod(f.dir, 0o755); err != nil { // the nodes' user must reach its subdirectories
		return fmt.Errorf("pgfailover: %w", err)
	}
	lock, err := takeLock(f.dir)
	if err != nil {
		return err
	}
	f.lock = lock
	return nil
}

func (f *Formation) chown(path string) error {
	if f.cred == nil {
		return nil
	}
	return os.Chown(path, int(f.cred.Uid), int(f.cred.Gid))
}

// ensureSocketDir creates SocketDir, as Debian's postgresql-common does at boot, if a
// machine without the packaged server lacks it.
func (f *Formation) ensureSocketDir() error {
	if _, err := os.Stat(SocketDir); err == nil {
		return nil
	}
	if err := os.MkdirAll(SocketDir, 0o2775); err != nil {
		return fmt.Errorf("pgfailover: socket directory: %w", err)
	}
	return f.chown(SocketDir)
}

// credential is the uid and primary gid of user name, with no supplementary groups.
func credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("user %s (PostgreSQL refuses to run as root): %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user %s: uid %q gid %q", name, u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// appendLines appends each line that path does not hold yet, keeping its owner and mode.
func appendLines(path string, lines []string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	var add strings.Builder
	if len(b) > 0 && b[len(b)-1] != '\n' {
		add.WriteByte('\n')
	}
	for _, l := range lines {
		if !have[strings.TrimSpace(l)] {
			add.WriteString(l + "\n")
		}
	}
	if strings.TrimSpace(add.String()) == "" {
		return nil
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := fh.WriteString(add.String()); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// writeSettings appends settings to pgdata's postgresql.auto.conf, which PostgreSQL reads
// last (ALTER SYSTEM's file; pg_basebackup copies it to a new standby).
func writeSettings(pgdata string, settings map[string]string) error {
	if len(settings) == 0 {
		return nil
	}
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		lines = append(lines, fmt.Sprintf("%s = '%s'", k, strings.ReplaceAll(settings[k], "'", "''")))
	}
	return appendLines(filepath.Join(pgdata, "postgresql.auto.conf"), lines)
}
