// Package pgfailover runs a pg_auto_failover formation: a monitor and two (or more) data
// nodes of PostgreSQL with synchronous replication, driven by Debian's pg_autoctl
// (packages postgresql-15-auto-failover and pg-auto-failover-cli).
//
// Create builds a formation from a NodeSpec per node: the address the node listens on and is
// known by, its port, its directory, and a Starter that starts a process for it. The lab
// passes a Starter that starts processes inside a host's network namespace
// (lab.Host.StartCmd); the tests here leave it nil and run every node on 127.0.0.1 with
// ports of their own. As root, every process runs as the postgres user (pg_autoctl and
// postgres refuse to run as root).
//
// The formation is set up as deploy/OPERATIONS.md (section 16) tells an operator to: `pg_autoctl
// create monitor`, `pg_autoctl create postgres` per data node, `pg_autoctl run` for each, the
// monitor's health checks and the keepers' network-partition timeout tuned (Tuned), so that
// the loss of the primary is over in seconds rather than the defaults' ~50 s, with the
// monitor's demote timeout kept above the keepers' partition timeout so that two primaries
// never exist at once, and pg_hba records that let a rejoining node rewind. With
// Options.Secure, the nodes talk TLS and log in with scram-sha-256 passwords kept in each
// node's ~/.pgpass, and initdb's trust records for TCP from loopback are removed, as in
// production; without it, --auth trust --no-ssl.
//
// In the lab, OnHost makes a node's spec from a lab host (lab.Host satisfies Host), with
// ports from FreePorts (they must differ, see below), and Fast timeouts:
//
//	ports, err := pgfailover.FreePorts(3)
//	f, err := pgfailover.Create(ctx, pgfailover.Options{
//		Monitor:  pgfailover.OnHost("monitor", mon, ports[0]),
//		Nodes:    []pgfailover.NodeSpec{pgfailover.OnHost("db-1", db1, ports[1]), pgfailover.OnHost("db-2", db2, ports[2])},
//		Network:  lab.Prefix.String(), // the data nodes reach the monitor from the lab's subnet
//		Database: "outrigger",
//		Timeouts: &pgfailover.Fast,
//	})
//	err = f.CreateOwner(ctx, "outrigger", password)                                // the app's role owns the database
//	err = f.AddHBA(ctx, "host outrigger outrigger 198.18.0.0/24 scram-sha-256") // on every data node
//	uri, err := f.URI(ctx, url.UserPassword("outrigger", password))            // both nodes, read-write, connect_timeout=2
//
// Then break it: a lab Crash of the primary's host (or Node.Kill on loopback), WaitFor or
// Primary to see the standby promoted, Node.Run after Boot to bring the old primary back as
// standby, Switchover for a planned change, Node.KillPostgres to kill PostgreSQL alone (its
// keeper restarts it; the monitor may still fail over if the keeper reported PostgreSQL down
// first), Events for what the monitor did and why.
//
// Every node's unix socket is in SocketDir, which all network namespaces share: the test
// process reaches any node there (Node.SocketDSN), whatever namespace the node runs in. So
// no two nodes on one machine may share a port, nor use the port of the machine's own
// PostgreSQL.
//
// Nothing is left behind: Close stops every process and removes every directory it made
// (pg_autoctl's configuration and state live under each node's directory, not in the
// postgres user's home), and Create first sweeps what formations of dead test processes
// left.
package pgfailover
