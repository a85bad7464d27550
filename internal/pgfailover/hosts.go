package pgfailover

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// Host is a machine a node can run on: lab.Host is one (a network namespace of the lab),
// so a formation runs on lab hosts without this package knowing about labs.
type Host interface {
	// Name is the host's name; Addr its address, where the node listens and is reached.
	Name() string
	Addr() netip.Addr
	// Dir is a directory of the host's own, searchable by every user; the node's
	// directory is made in it.
	Dir() string
	// StartCmd starts cmd on the host (see Starter).
	StartCmd(cmd *exec.Cmd) error
}

// OnHost is the NodeSpec of a node called name on host h at port: it listens on h's
// address, keeps its files in h.Dir()/pg-NAME, and every process of it (keeper,
// PostgreSQL, pg_autoctl commands) starts on h. A crash of h kills the node; after h
// boots, Node.Run brings it back. Port must be unique on the machine (FreePorts).
func OnHost(name string, h Host, port int) NodeSpec {
	return NodeSpec{
		Name:  name,
		Addr:  h.Addr().String(),
		Port:  port,
		Dir:   filepath.Join(h.Dir(), "pg-"+name),
		Start: h.StartCmd,
	}
}

// FreePorts returns n distinct ports that are free on loopback now and that no
// PostgreSQL socket in SocketDir uses: every node's unix socket is in SocketDir, which
// all network namespaces share, so a node's port must differ from every other node's on
// the machine, whatever host it runs on.
func FreePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100 {
			return nil, fmt.Errorf("pgfailover: no %d free ports found in 100 tries", n)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pgfailover: find a free port: %w", err)
		}
		lns = append(lns, ln) // held until every port is chosen, so they differ
		p := ln.Addr().(*net.TCPAddr).Port
		sock := filepath.Join(SocketDir, ".s.PGSQL."+strconv.Itoa(p))
		if _, err := os.Stat(sock + ".lock"); err == nil {
			continue
		}
		ports = append(ports, p)
	}
	return ports, nil
}
