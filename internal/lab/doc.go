// Package lab builds hosts out of Linux network namespaces, so that tests can run real
// programs on several "machines" of one computer and break those machines the way
// production ones break: a crash, a freeze, a network that drops every packet, two hosts
// that cannot reach each other.
//
// # The model
//
// A Lab is a switch and its hosts. The switch is a Linux bridge in a network namespace of
// its own (multicast snooping off, so VRRP adverts reach every port). A Host is a network
// namespace with lo and eth0, eth0 being one end of a veth pair whose other end is a port
// of the bridge; eth0 carries the host's address from Prefix (198.18.0.0/24, the
// benchmarking range: routed nowhere). Nothing routes off the bridge: a host has no default
// route and no link to the machine's own namespace, so a host reaches other hosts and
// nothing else. IPv6 is off. Hosts share the machine's file system, users, process ids and
// /proc; only the network is theirs. /sys is the machine's too: ask ip(8) or netlink, not
// /sys/class/net, about a host's interfaces.
//
// Everything a lab makes carries the test process's id: the lab's name is "olab-PID-N"
// (its directory under the temporary directory, and the switch's namespace), host H's
// namespace is "olab-PID-N-H", switch ports "olPIDhI". Close removes all of it and stops
// every process on every host; New first sweeps what labs of dead processes left behind
// (Sweep), never touching those of live ones, so labs of several test binaries can run at
// once on one machine.
//
// # Using it
//
// In a test, ForTest builds a lab and removes it at cleanup (logging every process's log
// if the test failed); it skips the test when not root, and fails it when root but the lab
// cannot be built (a tool missing: the error names the Debian package):
//
//	l := lab.ForTest(t, lab.Options{Need: []string{"keepalived"}})
//	hosts := lab.AddHosts(t, l, "client", "lb-a", "lb-b")
//	p, err := hosts[1].Start(t.Context(), lab.ProcSpec{Argv: []string{"/path/to/lb", "serve", "-config", cfg}})
//	out, err := hosts[1].Run(t.Context(), "ip", "-4", "addr", "show")
//
// Start runs a long-running process on a host (its stdout and stderr to Host.Dir/NAME.log,
// optionally as another user, killed with the test binary); Run runs a command to
// completion; StartCmd starts any exec.Cmd on a host (pgtest runs PostgreSQL through it:
// see StartPostgres). A test's own code takes part as a host through in-process sockets:
// Host.DialContext, Host.Listen and Host.HTTPTransport create their sockets inside the
// host's namespace (a locked OS thread enters it and comes back before any other goroutine
// can run on it), so a load generator in the test can be "the client host" talking to a
// virtual IP.
//
// # Faults
//
// Each fault is idempotent, and its inverse undoes exactly what it did:
//
//   - Host.Crash / Host.Boot: the link goes down, then every process on the host is
//     SIGKILLed; Boot brings the link up with only the host's own address, an empty
//     RunDir and an empty neighbour cache, as after a reboot (no process restarted).
//   - Host.Freeze / Host.Thaw: every process SIGSTOPped / SIGCONTinued; the kernel still
//     completes TCP handshakes on a frozen server's ports.
//   - Host.Blackhole / Host.Unblackhole: an nftables table inside the host drops every
//     packet in and out but loopback, link up: peers see silence, never a reset.
//   - Lab.Partition / Lab.Heal: the switch drops every packet between two hosts (ARP
//     excepted, so each sees the other fall silent); other pairs are untouched.
//
// Host.SetSysctl sets a host's net.* sysctls (per namespace); Lab.Holders tells which hosts
// carry an address on a live link (who holds a virtual IP). Host.StartKeepalived runs
// keepalived on a host the one way its process tracking works, and SetDefinitions renders
// deploy/keepalived's example configuration with lab addresses.
//
// The lab needs root and iproute2 and nftables (keepalived, pg_auto_failover and sshd for
// the tests that run them); .ci/run installs them all. See the README's "The lab".
package lab
