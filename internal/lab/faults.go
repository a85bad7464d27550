package lab

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Faults. Each is idempotent, and its inverse restores what it changed:
//
//	Crash     / Boot          processes killed, link cut        / link up, fresh network state
//	Freeze    / Thaw          every process SIGSTOPped          / SIGCONTinued
//	Blackhole / Unblackhole   every packet dropped, link up     / packets pass again
//	Lab.Partition / Lab.Heal  packets between two hosts cut     / pass again

// Crash makes the host vanish as a powered-off machine does: its link goes down first (so
// no FIN or RST leaves it), then every process in its namespace is SIGKILLed, the lab's
// and any other, until none is left (those started with Start are reaped, their Exited
// closed, when Crash returns). Peers see silence: a connect times out, or fails once
// their ARP entry for it expires. Sockets the caller opened in the host (Dial, Listen) are
// not processes and stay open, unreachable. Start refuses a crashed host until Boot.
func (h *Host) Crash(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := h.ns.run(ctx, "", "ip", "link", "set", "eth0", "down"); err != nil {
		return fmt.Errorf("lab: crash %s: %w", h.name, err)
	}
	h.crashed = true
	for _, p := range h.procs {
		p.Kill() // one that has not entered the namespace yet (EntersItself)
	}
	if err := killAll(ctx, h.ns); err != nil {
		return fmt.Errorf("lab: crash %s: %w", h.name, err)
	}
	for _, p := range h.procs { // reaped, so Exited is closed when Crash returns
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("lab: crash %s: %s not reaped: %w", h.name, p.name, ctx.Err())
		}
	}
	return nil
}

// Boot brings a crashed host back as a rebooted machine with no service started: the
// addresses its processes had added (a virtual IP left by a killed keepalived, on eth0 or
// lo) and its neighbour cache are flushed, its own address stays, its RunDir is emptied,
// and its link comes up.
// Its sysctls and nftables tables (a Blackhole included) persist, as configuration does.
// Booting a host that has not crashed does nothing.
func (h *Host) Boot(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.crashed {
		return nil
	}
	batch := fmt.Sprintf("addr flush dev eth0\naddr add %s dev eth0\naddr flush dev lo scope global\nneigh flush all\nlink set eth0 up\n", h.prefix())
	if _, err := h.ns.run(ctx, batch, "ip", "-batch", "-"); err != nil {
		return fmt.Errorf("lab: boot %s: %w", h.name, err)
	}
	if err := os.RemoveAll(h.RunDir()); err != nil {
		return fmt.Errorf("lab: boot %s: empty its run directory: %w", h.name, err)
	}
	if err := os.Mkdir(h.RunDir(), 0o755); err != nil {
		return fmt.Errorf("lab: boot %s: %w", h.name, err)
	}
	h.crashed = false
	return nil
}

// Crashed reports whether the host is crashed (Crash without Boot since).
func (h *Host) Crashed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.crashed
}

// Freeze SIGSTOPs every process on the host and returns once all are stopped. Their
// kernel still answers: a connect to a frozen server's port completes (the listen backlog
// takes it), but nothing is read or answered. A process started afterwards runs.
func (h *Host) Freeze(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := h.ns.pids()
		if err != nil {
			return fmt.Errorf("lab: freeze %s: %w", h.name, err)
		}
		running := 0
		for _, pid := range pids {
			if !stopped(pid) {
				running++
				syscall.Kill(pid, syscall.SIGSTOP)
			}
		}
		if running == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: freeze %s: %d processes would not stop", h.name, running)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: freeze %s: %w", h.name, ctx.Err())
		case <-time.After(procWaitPoll):
		}
	}
}

// Thaw SIGCONTs every process on the host. Thawing a host that is not frozen does nothing
// to a process that is running.
func (h *Host) Thaw(ctx context.Context) error {
	if _, err := h.ns.signalAll(syscall.SIGCONT); err != nil {
		return fmt.Errorf("lab: thaw %s: %w", h.name, err)
	}
	return nil
}

// stopped reports whether process pid is stopped (state T in /proc/PID/stat).
func stopped(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // gone: nothing to stop
	}
	// The state follows the command name, which is in parentheses and may hold anything.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] == 'T' || s[i+2] == 't'
}

// blackholeTable drops every packet into and out of the host except on lo, before
// anything else sees it. ARP is not IP and still passes, as a cloud's network answers ARP
// for a machine whatever the machine does: peers send, and hear nothing back.
const blackholeTable = "olab_blackhole"

// Blackhole drops every packet into and out of the host, loopback excepted, with an
// nftables table inside the host's namespace, while its link stays up: peers see silence
// (a connect times out, an established connection stalls), never a reset; the host's
// processes see the same of every peer.
func (h *Host) Blackhole(ctx context.Context) error {
	script := fmt.Sprintf(`add table inet %[1]s
delete table inet %[1]s
table inet %[1]s {
	chain input { type filter hook input priority -400; policy drop; iif lo accept; }
	chain output { type filter hook output priority -400; policy drop; oif lo accept; }
}
`, blackholeTable)
	if _, err := h.ns.run(ctx, script, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("lab: blackhole %s: %w", h.name, err)
	}
	return nil
}

// Unblackhole removes the table Blackhole added. Doing so on a host that is not
// blackholed does nothing.
func (h *Host) Unblackhole(ctx context.Context) error {
	script := fmt.Sprintf("add table inet %[1]s\ndelete table inet %[1]s\n", blackholeTable)
	if _, err := h.ns.run(ctx, script, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("lab: unblackhole %s: %w", h.name, err)
	}
	return nil
}
