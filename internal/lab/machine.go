package lab

import (
	"context"
	"fmt"
	"net/netip"
)

// machinePort is the switch's port that Attach links the machine's own namespace to.
const machinePort = "machine"

// Attach links the machine's own network namespace to the lab's switch, so that a
// browser or curl on the machine reaches the lab's hosts (a virtual IP included): a veth
// pair, one end "olPIDh0" in the machine's namespace with the next free address of
// Prefix, the other a port of the bridge. It returns that address and a function that
// removes the link. The machine gets a route to Prefix only: the hosts still have no
// route off the bridge, and nothing is forwarded for them. The link also goes when the
// lab closes (deleting the switch's namespace deletes the pair), and Sweep removes one
// left by a dead process. Only one lab per process can be attached at a time.
func (l *Lab) Attach(ctx context.Context) (netip.Addr, func() error, error) {
	addr, err := l.AllocAddr()
	if err != nil {
		return netip.Addr{}, nil, err
	}
	name := portName(l.pid, 0)
	if _, err := ipCmd(ctx, "link", "add", name, "type", "veth", "peer", "name", machinePort, "netns", string(l.sw)); err != nil {
		return netip.Addr{}, nil, fmt.Errorf("lab: attach the machine: %w", err)
	}
	detach := func() error {
		if _, err := ipCmd(context.Background(), "link", "del", name); err != nil {
			return fmt.Errorf("lab: detach the machine: %w", err)
		}
		return nil
	}
	if _, err := l.sw.run(ctx, "", "ip", "link", "set", machinePort, "master", "br0", "up"); err != nil {
		detach()
		return netip.Addr{}, nil, fmt.Errorf("lab: attach the machine: %w", err)
	}
	batch := fmt.Sprintf("addr add %s dev %s\nlink set %s up\n", netip.PrefixFrom(addr, Prefix.Bits()), name, name)
	if _, err := runTool(ctx, batch, "ip", "-batch", "-"); err != nil {
		detach()
		return netip.Addr{}, nil, fmt.Errorf("lab: attach the machine: %w", err)
	}
	return addr, detach, nil
}
