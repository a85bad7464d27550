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
// The formation is set up as deploy/OPERATIONS.md tells an operator to: `pg_autoctl create
// monitor`, `pg_autoctl create postgres` per data node, `pg_autoctl run` for each, the
// monitor's health checks and the keepers' network-partition timeout tuned (Tuned), so that
// the loss of the primary is over in seconds rather than the defaults' ~50 s, with the
// monitor's demote timeout kept above the keepers' partition timeout so that two primaries
// never exist at once.
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
