package labfleet

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"

	"outrigger/internal/lab"
	"outrigger/internal/pgfailover"
)

// AutoFailover is PostgreSQL that fails over: a pg_auto_failover formation (internal/
// pgfailover) with its monitor on host "monitor" and data nodes on hosts "db-1" and "db-2"
// (db-1 the first primary), synchronous replication, the lab's Fast timeouts unless
// Timeouts says otherwise. The apps get DESIGN.md's connection string: both data nodes,
// target_session_attrs=read-write, connect_timeout=2. Use it by pointer (Start keeps the
// formation in it), and Close it before the lab (Close stops the nodes cleanly, so that
// no socket is left in pgfailover.SocketDir).
type AutoFailover struct {
	// Timeouts are the monitor's and keepers'; nil: pgfailover.Fast.
	Timeouts *pgfailover.Timeouts

	mu sync.Mutex
	l  *lab.Lab
	f  *pgfailover.Formation
}

// Database, role and password of the fleet's application database on a formation.
const (
	failoverDB       = "outrigger"
	failoverRole     = "outrigger"
	failoverPassword = "lab-outrigger-7c2e9a41"
)

// Start adds hosts monitor, db-1 and db-2 to l, creates the formation on them, makes the
// application's role the database's owner (PostgreSQL 15: only the owner creates in
// public), lets it in from the lab's network, and returns its multi-host URL.
func (a *AutoFailover) Start(ctx context.Context, l *lab.Lab) (string, error) {
	var hosts []*lab.Host
	for _, name := range []string{"monitor", "db-1", "db-2"} {
		h, err := l.AddHost(ctx, name)
		if err != nil {
			return "", err
		}
		hosts = append(hosts, h)
	}
	ports, err := pgfailover.FreePorts(3)
	if err != nil {
		return "", err
	}
	tm := pgfailover.Fast
	if a.Timeouts != nil {
		tm = *a.Timeouts
	}
	f, err := pgfailover.Create(ctx, pgfailover.Options{
		Monitor: pgfailover.OnHost("monitor", hosts[0], ports[0]),
		Nodes: []pgfailover.NodeSpec{
			pgfailover.OnHost("db-1", hosts[1], ports[1]),
			pgfailover.OnHost("db-2", hosts[2], ports[2]),
		},
		Dir:      filepath.Join(l.Dir(), "pgfailover"),
		Network:  lab.Prefix.String(),
		Database: failoverDB,
		Timeouts: &tm,
	})
	if err != nil {
		return "", fmt.Errorf("labfleet: pg_auto_failover: %w", err)
	}
	a.mu.Lock()
	a.l, a.f = l, f
	a.mu.Unlock()
	if err := f.CreateOwner(ctx, failoverRole, failoverPassword); err != nil {
		return "", err
	}
	if err := f.AddHBA(ctx, fmt.Sprintf("host %s %s %s scram-sha-256", failoverDB, failoverRole, lab.Prefix)); err != nil {
		return "", err
	}
	return f.URI(ctx, url.UserPassword(failoverRole, failoverPassword))
}

// Formation is the running formation (nil before Start).
func (a *AutoFailover) Formation() *pgfailover.Formation {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.f
}

func (a *AutoFailover) started() (*lab.Lab, *pgfailover.Formation, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil, nil, errors.New("labfleet: the formation is not started")
	}
	return a.l, a.f, nil
}

// Primary is the data node that is the primary now and its host.
func (a *AutoFailover) Primary(ctx context.Context) (*pgfailover.Node, *lab.Host, error) {
	l, f, err := a.started()
	if err != nil {
		return nil, nil, err
	}
	n, err := f.Primary(ctx)
	if err != nil {
		return nil, nil, err
	}
	return n, l.Host(n.Name()), nil
}

// CrashPrimary crashes the host of the primary (lab.Host.Crash: link cut, every process
// killed) and returns the node it was.
func (a *AutoFailover) CrashPrimary(ctx context.Context) (*pgfailover.Node, error) {
	n, h, err := a.Primary(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.Crash(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// Boot boots the crashed host of node name (a data node or the monitor) and starts its
// keeper again, as systemd would at boot: the node rejoins (a data node as secondary,
// rewound if needed). It returns without waiting for that; see pgfailover's WaitStable.
func (a *AutoFailover) Boot(ctx context.Context, name string) error {
	l, f, err := a.started()
	if err != nil {
		return err
	}
	n, h := f.Node(name), l.Host(name)
	if n == nil || h == nil {
		return fmt.Errorf("labfleet: no database node %q", name)
	}
	if err := h.Boot(ctx); err != nil {
		return err
	}
	return n.Run(ctx)
}

// Switchover runs `pg_autoctl perform switchover` on the monitor and waits until the
// formation is stable again.
func (a *AutoFailover) Switchover(ctx context.Context) error {
	_, f, err := a.started()
	if err != nil {
		return err
	}
	return f.Switchover(ctx)
}

// Close stops the formation's nodes and removes their files; the lab's Close would kill
// them too, but maybe not cleanly. Safe before Start and more than once.
func (a *AutoFailover) Close() error {
	a.mu.Lock()
	f := a.f
	a.mu.Unlock()
	if f == nil {
		return nil
	}
	return f.Close()
}

// OutageLBConfig is Options.LBConfig for a fleet whose database can be away for seconds:
// lb's health-check timeout (1 s) above what an app's /healthz may take then (its
// database ping waits up to 500 ms before it answers "degraded"). With the fleet's
// default 400 ms, every app times out its checks during a failover, so both lbs' /readyz
// fail (no backend answers), keepalived lowers both, and when the database returns the
// lb whose checks pass first preempts the other: the virtual IP moves, and every
// connection to it is reset.
func OutageLBConfig() map[string]any {
	return map[string]any{"health_check": map[string]any{"interval": "1s", "timeout": "1s"}}
}
