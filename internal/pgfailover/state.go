package pgfailover

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// NodeState is one data node as the monitor sees it (pgautofailover.node).
type NodeState struct {
	ID   int64
	Name string
	Host string
	Port int
	// Reported is the state the node's keeper last reported; Assigned the one the monitor
	// wants it in (pg_autoctl show state's "Reported State" and "Assigned State").
	Reported, Assigned string
	// Health is the monitor's last health check: 1 good, 0 bad, -1 not checked yet.
	Health int
	// LSN and TLI are the WAL position and timeline the node last reported.
	LSN string
	TLI int
	// CandidatePriority and ReplicationQuorum are the node's failover settings.
	CandidatePriority int
	ReplicationQuorum bool
	// PGRunning is whether the keeper last reported PostgreSQL running, at ReportedAt
	// (the monitor's clock).
	PGRunning  bool
	ReportedAt time.Time
}

// State is a formation's data nodes, by node id.
type State []NodeState

// Node is the node called name.
func (s State) Node(name string) (NodeState, bool) {
	for _, n := range s {
		if n.Name == name {
			return n, true
		}
	}
	return NodeState{}, false
}

// writable are the states in which a node is the primary and takes writes.
var writable = map[string]bool{"single": true, "wait_primary": true, "primary": true}

// Primary is the node that is, and is meant to be, the primary (single, wait_primary or
// primary); false during a failover.
func (s State) Primary() (NodeState, bool) {
	var found []NodeState
	for _, n := range s {
		if writable[n.Reported] && n.Reported == n.Assigned {
			found = append(found, n)
		}
	}
	if len(found) != 1 {
		return NodeState{}, false
	}
	return found[0], true
}

// Stable reports whether the formation is at rest with synchronous replication: one node
// primary, every other secondary, each in the state the monitor assigned.
func (s State) Stable() bool {
	primaries := 0
	for _, n := range s {
		if n.Reported != n.Assigned {
			return false
		}
		switch n.Reported {
		case "primary":
			primaries++
		case "secondary":
		default:
			return false
		}
	}
	return primaries == 1 && len(s) >= 2
}

// String is one line: name:reported/assigned for each node.
func (s State) String() string {
	var b strings.Builder
	for i, n := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%s", n.Name, n.Reported)
		if n.Assigned != n.Reported {
			b.WriteString("->" + n.Assigned)
		}
	}
	return b.String()
}

// State asks the monitor for the data nodes' states.
func (f *Formation) State(ctx context.Context) (State, error) {
	conn, err := connect(ctx, f.monitor, "pg_auto_failover")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT nodeid, nodename, nodehost, nodeport, reportedstate::text, goalstate::text,
			health, reportedlsn::text, reportedtli, candidatepriority, replicationquorum,
			coalesce(reportedpgisrunning, false), reporttime
		FROM pgautofailover.node WHERE formationid = $1 ORDER BY nodeid`, FormationName)
	if err != nil {
		return nil, fmt.Errorf("monitor state: %w", err)
	}
	s, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (NodeState, error) {
		var n NodeState
		err := r.Scan(&n.ID, &n.Name, &n.Host, &n.Port, &n.Reported, &n.Assigned, &n.Health, &n.LSN, &n.TLI,
			&n.CandidatePriority, &n.ReplicationQuorum, &n.PGRunning, &n.ReportedAt)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("monitor state: %w", err)
	}
	return s, nil
}

// statePoll is how often WaitFor asks the monitor.
const statePoll = 100 * time.Millisecond

// WaitFor polls the monitor until ok(state) holds, and returns that state. While the
// monitor does not answer it keeps trying; at ctx's end the error names what was awaited
// and the last state seen.
func (f *Formation) WaitFor(ctx context.Context, what string, ok func(State) bool) (State, error) {
	tick := time.NewTicker(statePoll)
	defer tick.Stop()
	var last State
	var lastErr error
	for {
		s, err := f.State(ctx)
		if err == nil {
			if ok(s) {
				return s, nil
			}
			last, lastErr = s, nil
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return nil, fmt.Errorf("wait for %s: %w (last error: %v; last state: %s)", what, ctx.Err(), lastErr, last)
			}
			return nil, fmt.Errorf("wait for %s: %w (last state: %s)", what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// WaitStable waits until the formation is Stable.
func (f *Formation) WaitStable(ctx context.Context) (State, error) {
	return f.WaitFor(ctx, "a primary and secondaries", State.Stable)
}

// Primary is the data node that is the primary now (see State.Primary).
func (f *Formation) Primary(ctx context.Context) (*Node, error) {
	s, err := f.State(ctx)
	if err != nil {
		return nil, err
	}
	p, ok := s.Primary()
	if !ok {
		return nil, fmt.Errorf("no primary now: %s", s)
	}
	if n := f.Node(p.Name); n != nil {
		return n, nil
	}
	return nil, fmt.Errorf("the monitor's primary %q is not a node of this formation", p.Name)
}

// Switchover runs `pg_autoctl perform switchover` on the monitor (a planned change of
// primary: the secondary catches up, the primary demotes, the secondary is promoted) and
// waits until the formation is stable again.
func (f *Formation) Switchover(ctx context.Context) error {
	// pg_autoctl refuses a switchover while a failover is under way.
	if _, err := f.WaitStable(ctx); err != nil {
		return err
	}
	m := f.monitor
	if _, err := m.autoctl(ctx, "perform", "switchover", "--pgdata", m.PGData(), "--formation", FormationName); err != nil {
		return err
	}
	_, err := f.WaitStable(ctx)
	return err
}

// URI is the multi-host connection string of the application database, as `pg_autoctl
// show uri --formation default` prints it (every data node, target_session_attrs=
// read-write), with connect_timeout=2 added as DESIGN.md asks, and user as its user info
// unless nil.
func (f *Formation) URI(ctx context.Context, user *url.Userinfo) (string, error) {
	m := f.monitor
	out, err := m.autoctl(ctx, "show", "uri", "--pgdata", m.PGData(), "--formation", FormationName)
	if err != nil {
		return "", err
	}
	return AppURI(lastLine(out), user)
}

// AppURI turns pg_autoctl's formation URI into the application's: connect_timeout=2 added
// (a host that vanished costs 2 s per new connection, not TCP's minutes) and user set.
func AppURI(formationURI string, user *url.Userinfo) (string, error) {
	u, err := url.Parse(strings.TrimSpace(formationURI))
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return "", fmt.Errorf("pg_autoctl printed %q, not a postgres:// URI", formationURI)
	}
	q := u.Query()
	if q.Get("target_session_attrs") != "read-write" {
		return "", fmt.Errorf("formation URI %q lacks target_session_attrs=read-write", formationURI)
	}
	if q.Get("connect_timeout") == "" {
		q.Set("connect_timeout", "2")
	}
	u.RawQuery = q.Encode()
	u.User = user
	return u.String(), nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// tuneMonitor applies the formation's timeouts on the monitor, as OPERATIONS.md has the
// operator do, and checks that the monitor took them.
func (f *Formation) tuneMonitor(ctx context.Context) error {
	conn, err := connect(ctx, f.monitor, "pg_auto_failover")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, stmt := range f.timeouts.MonitorSQL() {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("monitor: %s: %w", stmt, err)
		}
	}
	for _, s := range f.timeouts.monitorSettings() {
		var got string
		deadline := time.Now().Add(10 * time.Second)
		for {
			// A reload reaches this backend at its next command.
			if err := conn.QueryRow(ctx, "SELECT setting FROM pg_settings WHERE name = $1", s[0]).Scan(&got); err != nil {
				return fmt.Errorf("monitor: read %s: %w", s[0], err)
			}
			if got == s[1] || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got != s[1] {
			return fmt.Errorf("monitor: %s is %s after the reload, want %s", s[0], got, s[1])
		}
	}
	return nil
}

// connect opens a connection to db on node n over its unix socket.
func connect(ctx context.Context, n *Node, db string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, n.SocketDSN(db))
	if err != nil {
		return nil, fmt.Errorf("connect to %s on node %s: %w", db, n.Name(), err)
	}
	return conn, nil
}

// waitSQL waits until node n answers on database db, and fails early if its keeper exits.
func (f *Formation) waitSQL(ctx context.Context, n *Node, db string) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	exited := n.KeeperExited()
	var lastErr error
	for {
		conn, err := connect(ctx, n, db)
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		lastErr = err
		select {
		case <-exited:
			return fmt.Errorf("node %s: the keeper exited: %s", n.Name(), tail(readFile(n.LogPath()), 1500))
		case <-ctx.Done():
			return fmt.Errorf("node %s does not answer: %w (last: %v)", n.Name(), ctx.Err(), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// Event is one line of the monitor's event log (pg_autoctl show events).
type Event struct {
	At          time.Time
	Node        string
	Reported    string
	Assigned    string
	Description string
}

// Events are the monitor's last n events of the formation, oldest first: what an operator
// reads with `pg_autoctl show events` after a failover.
func (f *Formation) Events(ctx context.Context, n int) ([]Event, error) {
	conn, err := connect(ctx, f.monitor, "pg_auto_failover")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT eventtime, nodename, reportedstate::text, goalstate::text, coalesce(description, '')
		FROM (SELECT * FROM pgautofailover.event WHERE formationid = $1 ORDER BY eventid DESC LIMIT $2) e
		ORDER BY eventid`, FormationName, n)
	if err != nil {
		return nil, fmt.Errorf("monitor events: %w", err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		err := r.Scan(&e.At, &e.Node, &e.Reported, &e.Assigned, &e.Description)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("monitor events: %w", err)
	}
	return evs, nil
}
