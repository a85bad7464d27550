package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Host is a machine of the lab: a network namespace with lo and eth0 (Addr()/24 on the
// lab's bridge) and no route off the bridge. Its methods are safe for concurrent use.
type Host struct {
	lab  *Lab
	name string
	ns   netns
	addr netip.Addr
	port string // its switch port, in the switch's namespace
	dir  string

	mu      sync.Mutex
	procs   []*Proc
	crashed bool
}

// AddHost adds a host named name (lower-case letters, digits and '-', starting with a
// letter, unique in the lab) with the next free address of Prefix. IPv6 is off on it.
func (l *Lab) AddHost(ctx context.Context, name string) (*Host, error) {
	if !hostRE.MatchString(name) {
		return nil, fmt.Errorf("lab: host name %q: want a lower-case letter, then up to 31 of [a-z0-9-]", name)
	}
	l.mu.Lock()
	if l.isShut {
		l.mu.Unlock()
		return nil, fmt.Errorf("lab: add host %s: the lab is closed", name)
	}
	for _, h := range l.hosts {
		if h.name == name {
			l.mu.Unlock()
			return nil, fmt.Errorf("lab: host %s exists already", name)
		}
	}
	addr, err := l.allocLocked()
	if err != nil {
		l.mu.Unlock()
		return nil, err
	}
	h := &Host{
		lab: l, name: name, addr: addr,
		ns:   netns(l.name + "-" + name),
		port: portName(l.pid, len(l.hosts)+1),
		dir:  filepath.Join(l.dir, name),
	}
	// Listed before it is built, so Close removes whatever part of it exists.
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()

	if err := h.build(ctx); err != nil {
		return nil, fmt.Errorf("lab: add host %s: %w", name, err)
	}
	return h, nil
}

func (h *Host) build(ctx context.Context) error {
	if err := os.Mkdir(h.dir, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(h.RunDir(), 0o755); err != nil {
		return err
	}
	if _, err := ipCmd(ctx, "netns", "add", string(h.ns)); err != nil {
		return err
	}
	for _, key := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"} {
		if err := setSysctl(h.ns, key, "1"); err != nil {
			return err
		}
	}
	// Both ends are made right in their namespaces: no name is ever taken in ours.
	if _, err := ipCmd(ctx, "link", "add", "eth0", "netns", string(h.ns), "type", "veth",
		"peer", "name", h.port, "netns", string(h.lab.sw)); err != nil {
		return err
	}
	if _, err := h.lab.sw.run(ctx, "", "ip", "link", "set", h.port, "master", "br0", "up"); err != nil {
		return err
	}
	batch := fmt.Sprintf("link set lo up\naddr add %s dev eth0\nlink set eth0 up\n", h.prefix())
	if _, err := h.ns.run(ctx, batch, "ip", "-batch", "-"); err != nil {
		return err
	}
	return nil
}

func (h *Host) prefix() netip.Prefix { return netip.PrefixFrom(h.addr, Prefix.Bits()) }

// Name is the host's name in the lab.
func (h *Host) Name() string { return h.name }

// Addr is the host's address on the lab's network (on eth0).
func (h *Host) Addr() netip.Addr { return h.addr }

// Namespace is the name of the host's network namespace, for `ip netns exec NAME ...`.
func (h *Host) Namespace() string { return string(h.ns) }

// Dir is the host's directory in the lab's: its processes' logs, and room for its files.
func (h *Host) Dir() string { return h.dir }

// RunDir is the host's /run: a directory for pid files and sockets, emptied by Boot as a
// reboot empties /run (a daemon that finds its old pid file may refuse to start).
func (h *Host) RunDir() string { return filepath.Join(h.dir, "run") }

// Lab is the lab the host belongs to.
func (h *Host) Lab() *Lab { return h.lab }

// Procs returns the processes started on the host with Start, in order.
func (h *Host) Procs() []*Proc {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.procs)
}

// Sysctl reads a net.* sysctl of the host (net.* keys are per network namespace).
func (h *Host) Sysctl(key string) (string, error) { return getSysctl(h.ns, key) }

// SetSysctl sets a net.* sysctl of the host, e.g. net.ipv4.conf.eth0.arp_ignore. Keys
// outside net.* are refused: they would change the whole machine.
func (h *Host) SetSysctl(key, value string) error { return setSysctl(h.ns, key, value) }

// Addrs lists the addresses on the host's interfaces (lo's included).
func (h *Host) Addrs() (map[string][]netip.Prefix, error) {
	out := map[string][]netip.Prefix{}
	err := h.ns.do(func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, ifc := range ifs {
			addrs, err := ifc.Addrs()
			if err != nil {
				return err
			}
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok {
					ip, _ := netip.AddrFromSlice(ipn.IP)
					ones, _ := ipn.Mask.Size()
					out[ifc.Name] = append(out[ifc.Name], netip.PrefixFrom(ip.Unmap(), ones))
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab: addresses of %s: %w", h.name, err)
	}
	return out, nil
}

// Holds reports whether the host's eth0 is up and carries addr: whether it answers for
// addr on the lab's network.
func (h *Host) Holds(addr netip.Addr) (bool, error) {
	var held bool
	err := h.ns.do(func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if ifc.Flags&net.FlagUp == 0 {
			return nil
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, _ := netip.AddrFromSlice(ipn.IP); ip.Unmap() == addr {
					held = true
				}
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("lab: addresses of %s: %w", h.name, err)
	}
	return held, nil
}
