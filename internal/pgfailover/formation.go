package pgfailover

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
