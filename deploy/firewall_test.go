package deploy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// needRoot skips a test that needs root (network namespaces, nft) when not
// root, saying why; as root (CI) the tools must be there.
func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces and nftables): run as root, as CI does")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: as root (CI) it must be installed (.ci/run installs iproute2 and nftables)", tool)
		}
	}
}

// TestFirewallsParse checks every shipped ruleset with nft's own parser.
func TestFirewallsParse(t *testing.T) {
	needRoot(t, "nft")
	for _, f := range []string{"app.nft", "lb.nft", "db.nft"} {
		if out, err := exec.Command("nft", "-c", "-f", "nftables/"+f).CombinedOutput(); err != nil {
			t.Errorf("nft -c -f %s: %v\n%s", f, err, out)
		}
		text := readFile(t, "nftables/"+f)
		for _, want := range []string{"policy drop", "meta l4proto ipv6-icmp accept", "ct state established,related accept"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q", f, want)
			}
		}
	}
}

// fwHost is a VM made of a network namespace joined by a veth pair to a
// peer namespace, with IPv4 and IPv6 addresses on both sides (198.18.0.0/24
// and fd00:18::/64; nothing routes off the pair).
type fwHost struct {
	t        *testing.T
	vm, peer string // namespace names
}

const (
	vmAddr4, vmAddr6     = "198.18.0.11", "fd00:18::11"
	goodAddr4, goodAddr6 = "198.18.0.2", "fd00:18::2"   // the peer's allowed addresses
	badAddr4, badAddr6   = "198.18.0.99", "fd00:18::99" // the peer's other addresses
)

func newFWHost(t *testing.T, tag string) *fwHost {
	t.Helper()
	base := fmt.Sprintf("ofw%d%s", os.Getpid(), tag)
	h := &fwHost{t: t, vm: base + "v", peer: base + "p"}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", h.vm)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", h.vm).Run() })
	ip("netns", "add", h.peer)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", h.peer).Run() })
	ip("link", "add", base+"x", "netns", h.vm, "type", "veth", "peer", "name", base+"y", "netns", h.peer)
	for _, c := range []struct {
		ns, dev string
		addrs   []string
	}{
		{h.vm, base + "x", []string{vmAddr4 + "/24", vmAddr6 + "/64"}},
		{h.peer, base + "y", []string{goodAddr4 + "/24", badAddr4 + "/24", goodAddr6 + "/64", badAddr6 + "/64"}},
	} {
		for _, a := range c.addrs {
			args := []string{"-n", c.ns, "addr", "add", a, "dev", c.dev}
			if strings.Contains(a, ":") {
				args = append(args, "nodad") // usable at once, not after duplicate address detection
			}
			ip(args...)
		}
		ip("-n", c.ns, "link", "set", "lo", "up")
		ip("-n", c.ns, "link", "set", c.dev, "up")
	}
	return h
}

// load applies a ruleset in the VM's namespace, with its defines replaced.
func (h *fwHost) load(ruleset string, defines map[string]string) {
	h.t.Helper()
	for name, value := range defines {
		re := regexp.MustCompile(`(?m)^define ` + name + ` = .*$`)
		if !re.MatchString(ruleset) {
			h.t.Fatalf("the ruleset has no define %s", name)
		}
		ruleset = re.ReplaceAllString(ruleset, "define "+name+" = "+value)
	}
	cmd := exec.Command("ip", "netns", "exec", h.vm, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("nft -f in %s: %v\n%s", h.vm, err, out)
	}
}

// inNetns runs fn on an OS thread that is in namespace ns; sockets made
// there stay in it.
func inNetns(ns string, fn func() error) error {
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is left locked (and so ends with this goroutine) if it cannot go back.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("setns back: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// serve listens on port on every address of the VM and accepts until the test ends.
func (h *fwHost) serve(port int) {
	h.t.Helper()
	var ln net.Listener
	err := inNetns(h.vm, func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", port)) // IPv4 and IPv6
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// reach reports whether a TCP connection from src in the peer namespace to
// dst:port on the VM is accepted ("open"), refused, or dropped (no answer
// within the timeout: the firewall's policy drop).
func (h *fwHost) reach(src, dst string, port int) string {
	h.t.Helper()
	var result string
	err := inNetns(h.peer, func() error {
		d := net.Dialer{Timeout: 1500 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", net.JoinHostPort(dst, fmt.Sprint(port)))
		var ne net.Error
		switch {
		case err == nil:
			c.Close()
			result = "open"
		case errors.As(err, &ne) && ne.Timeout():
			result = "dropped"
		case errors.Is(err, unix.ECONNREFUSED):
			result = "refused"
		default:
			return err
		}
		return nil
	})
	if err != nil {
		h.t.Fatalf("connect %s -> %s:%d: %v", src, dst, port, err)
	}
	return result
}

type probe struct {
	src, dst string
	port     int
	want     string
}

func (h *fwHost) check(probes []probe) {
	h.t.Helper()
	for _, p := range probes {
		if got := h.reach(p.src, p.dst, p.port); got != p.want {
			h.t.Errorf("%s -> [%s]:%d: %s, want %s", p.src, p.dst, p.port, got, p.want)
		}
	}
}

// TestFirewallsInNamespaces loads the app and lb rulesets on a VM made of a
// network namespace and checks from a peer what they let through, over IPv4
// and IPv6: the allowed clients connect (over IPv6 that needs neighbour
// discovery, which a ruleset without ICMPv6 breaks, as the control shows),
// everyone else gets silence, not a refusal.
func TestFirewallsInNamespaces(t *testing.T) {
	needRoot(t, "ip", "nft")
	t.Run("app", func(t *testing.T) {
		h := newFWHost(t, "a")
		h.serve(8080)
		h.serve(9999)
		h.load(readFile(t, "nftables/app.nft"), map[string]string{
			"lbs": "{ " + goodAddr4 + " }", "lbs6": "{ " + goodAddr6 + " }",
			"admin_net": "{ " + goodAddr4 + " }", "admin_net6": "{ " + goodAddr6 + " }",
		})
		h.check([]probe{
			{goodAddr4, vmAddr4, 8080, "open"},
			{goodAddr6, vmAddr6, 8080, "open"},
			{badAddr4, vmAddr4, 8080, "dropped"},
			{badAddr6, vmAddr6, 8080, "dropped"},
			{goodAddr4, vmAddr4, 9999, "dropped"},
		})
	})
	t.Run("lb", func(t *testing.T) {
		h := newFWHost(t, "l")
		for _, port := range []int{80, 443, 9000} {
			h.serve(port)
		}
		h.load(readFile(t, "nftables/lb.nft"), map[string]string{
			"prometheus": "{ " + goodAddr4 + " }", "admin_net": "{ " + goodAddr4 + " }",
			"admin_net6": "{ " + goodAddr6 + " }", "peer_lb": "{ " + goodAddr4 + " }",
		})
		h.check([]probe{
			{badAddr4, vmAddr4, 443, "open"},
			{badAddr6, vmAddr6, 443, "open"},
			{badAddr6, vmAddr6, 80, "open"},
			{goodAddr4, vmAddr4, 9000, "open"},
			{badAddr4, vmAddr4, 9000, "dropped"},
			{badAddr6, vmAddr6, 9000, "dropped"},
		})
	})
	t.Run("control: without ICMPv6, IPv6 breaks", func(t *testing.T) {
		h := newFWHost(t, "c")
		h.serve(8080)
		ruleset := strings.Replace(readFile(t, "nftables/app.nft"), "meta l4proto ipv6-icmp accept", "", 1)
		h.load(ruleset, map[string]string{"lbs": "{ " + goodAddr4 + " }", "lbs6": "{ " + goodAddr6 + " }"})
		h.check([]probe{
			{goodAddr4, vmAddr4, 8080, "open"},
			{goodAddr6, vmAddr6, 8080, "dropped"},
		})
	})
}
