package deploy

import (
	"errors"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"outrigger/internal/lab"
	"outrigger/internal/lbtest"
)

// A pair of lbs in the lab, running keepalived/keepalived.conf and lb-notify.sh as they
// are, their definitions rendered with lab addresses, around the stand-in lb of
// standin_test.go.

// renderKeepalived returns keepalived/keepalived.conf with the values of its definitions
// ($NAME=value lines) replaced by vars; a name the file does not define fails the test.
func renderKeepalived(t testing.TB, vars map[string]string) string {
	t.Helper()
	b, err := os.ReadFile("keepalived/keepalived.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf, err := lab.SetDefinitions(string(b), vars)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// withoutTrackProcess drops the instance's track_process block: the check alone then
// notices a dead lb (for measuring what track_process is worth).
func withoutTrackProcess(conf string) string {
	return regexp.MustCompile(`(?s)\n\s*track_process \{[^}]*\}`).ReplaceAllString(conf, "")
}

// scriptDir holds what keepalived runs, where enable_script_security accepts it: a
// root-owned 0755 directory (the test binary itself lives in a private build directory).
type scriptDir struct {
	dir    string
	lb     string // the stand-in lb: this test binary under the name lb
	check  string // the stand-in check: GET /readyz on 127.0.0.1:9000, exit 0 on 200
	notify string // keepalived/lb-notify.sh
	hook   string // a notify hook that appends "STATE VIP" to $HOOK_LOG
}

func installScripts(t testing.TB, dir string) scriptDir {
	t.Helper()
	s := scriptDir{dir: dir, lb: filepath.Join(dir, "lb"), check: filepath.Join(dir, "lb-ready"),
		notify: filepath.Join(dir, "lb-notify.sh"), hook: filepath.Join(dir, "hook")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, exe, s.lb)
	copyFile(t, "keepalived/lb-notify.sh", s.notify)
	writeScript(t, s.hook, `echo "$*" >> "$HOOK_LOG"`)
	// What `lb ready` does, in a few milliseconds even on a loaded machine, where starting
	// this (race-enabled) test binary every second can take longer than the check's 1 s.
	writeScript(t, s.check, `exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/9000 || exit 1
printf "GET /readyz HTTP/1.0\r\n\r\n" >&3
read -r -t 1 _ status _ <&3 && [ "$status" = 200 ]'`)
	// The notify script logs with logger(1); the lab has no syslog: log to $NOTIFY_LOG.
	writeScript(t, filepath.Join(dir, "logger"), `echo "$*" >> "$NOTIFY_LOG"`)
	return s
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeScript(t testing.TB, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// lbNode is one lb host of a pair: a stand-in lb and keepalived.
type lbNode struct {
	host       *lab.Host
	bin        string // its own copy of the stand-in: keepalived tells lb processes by path
	conf       string
	failFile   string // while it exists, the stand-in's /readyz answers 503
	lb         *lab.Proc
	keepalived *lab.Proc
}

func (n *lbNode) name() string { return n.host.Name() }

// notifyLog is what lb-notify.sh has logged on the node.
func (n *lbNode) notifyLog() string {
	b, _ := os.ReadFile(filepath.Join(n.host.Dir(), "notify.log"))
	return string(b)
}

// hookLog is how the notify hook was called on the node.
func (n *lbNode) hookLog() string {
	b, _ := os.ReadFile(filepath.Join(n.host.Dir(), "hook.log"))
	return string(b)
}

// lbPair is a lab with a client host and two lb hosts sharing a virtual IP.
type lbPair struct {
	lab     *lab.Lab
	client  *lab.Host
	nodes   [2]*lbNode
	vip     netip.Addr
	scripts scriptDir
	opts    pairOptions
}

type pairOptions struct {
	shutdownDelay  time.Duration // the stand-in's
	noTrackProcess bool          // run the configuration without its track_process
}

// newPair builds the lab and starts both nodes (stand-in, then keepalived); it returns
// once exactly one node holds the virtual IP.
func newPair(t testing.TB, opts pairOptions) *lbPair {
	t.Helper()
	l := lab.ForTest(t, lab.Options{Need: []string{"keepalived"}})
	hosts := lab.AddHosts(t, l, "client", "lb-a", "lb-b")
	vip, err := l.AllocAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := &lbPair{lab: l, client: hosts[0], vip: vip, opts: opts,
		scripts: installScripts(t, filepath.Join(l.Dir(), "scripts"))}
	for i, h := range hosts[1:] {
		peer := hosts[2-i]
		n := &lbNode{host: h, bin: filepath.Join(h.Dir(), "bin", "lb"),
			conf: filepath.Join(h.Dir(), "keepalived.conf"), failFile: filepath.Join(h.Dir(), "not-ready")}
		if err := os.Mkdir(filepath.Dir(n.bin), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(p.scripts.lb, n.bin); err != nil {
			t.Fatal(err)
		}
		conf := renderKeepalived(t, map[string]string{
			"SELF": h.Addr().String(), "PEER": peer.Addr().String(), "IFACE": "eth0",
			"VIP": vip.String(), "VIP_PREFIX": "24",
			"LB_READY":    `"` + p.scripts.check + `"`,
			"LB_PROCESS":  n.bin + " serve",
			"NOTIFY":      p.scripts.notify,
			"SCRIPT_USER": "nobody",
		})
		if opts.noTrackProcess {
			conf = withoutTrackProcess(conf)
		}
		if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		p.nodes[i] = n
		p.start(t, n)
	}
	p.waitHolder(t, 10*time.Second)
	return p
}

// start starts the node's stand-in lb, waits until it is ready, then starts keepalived.
func (p *lbPair) start(t testing.TB, n *lbNode) {
	t.Helper()
	p.startLB(t, n)
	p.startKeepalived(t, n)
}

func (p *lbPair) startLB(t testing.TB, n *lbNode) {
	t.Helper()
	proc, err := n.host.Start(t.Context(), lab.ProcSpec{Name: "lb", Argv: []string{n.bin, "serve",
		"-listen", ":80", "-admin", "127.0.0.1:9000", "-name", n.name(),
		"-shutdown-delay", p.opts.shutdownDelay.String(), "-fail-file", n.failFile}})
	if err != nil {
		t.Fatal(err)
	}
	n.lb = proc
	lbtest.WaitFor(t, 10*time.Second, "the stand-in lb on "+n.name()+" ready", func() bool {
		_, err := n.host.Run(t.Context(), n.bin, "ready")
		return err == nil
	})
}

// startKeepalived starts keepalived on n (lab.Host.StartKeepalived), with the fake
// logger first on its scripts' PATH and the notify hook set.
func (p *lbPair) startKeepalived(t testing.TB, n *lbNode) {
	t.Helper()
	proc, err := n.host.StartKeepalived(t.Context(), n.conf, []string{
		"PATH=" + p.scripts.dir + ":" + os.Getenv("PATH"),
		"NOTIFY_LOG=" + filepath.Join(n.host.Dir(), "notify.log"),
		"LB_NOTIFY_HOOK=" + p.scripts.hook,
		"HOOK_LOG=" + filepath.Join(n.host.Dir(), "hook.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	n.keepalived = proc
}

// holders returns the nodes whose eth0 is up and carries the virtual IP.
func (p *lbPair) holders(t testing.TB) []*lbNode {
	t.Helper()
	var out []*lbNode
	for _, n := range p.nodes {
		ok, err := n.host.Holds(p.vip)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			out = append(out, n)
		}
	}
	return out
}

// waitHolder waits until exactly one node holds the virtual IP and returns it.
func (p *lbPair) waitHolder(t testing.TB, limit time.Duration) *lbNode {
	t.Helper()
	var h []*lbNode
	lbtest.WaitFor(t, limit, "a single holder of "+p.vip.String(), func() bool {
		h = p.holders(t)
		return len(h) == 1
	})
	return h[0]
}

// waitMove waits until n alone holds the virtual IP and returns how long that took.
func (p *lbPair) waitMove(t testing.TB, n *lbNode, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	lbtest.WaitFor(t, limit, n.name()+" alone holding "+p.vip.String(), func() bool {
		h := p.holders(t)
		return len(h) == 1 && h[0] == n
	})
	return time.Since(start)
}

// stays checks, for d, that n alone holds the virtual IP all along.
func (p *lbPair) stays(t testing.TB, n *lbNode, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if h := p.holders(t); len(h) != 1 || h[0] != n {
			t.Fatalf("the virtual IP left %s: held by %v", n.name(), names(h))
		}
	}
}

func (p *lbPair) other(n *lbNode) *lbNode {
	if p.nodes[0] == n {
		return p.nodes[1]
	}
	return p.nodes[0]
}

func names(nodes []*lbNode) []string {
	out := []string{}
	for _, n := range nodes {
		out = append(out, n.name())
	}
	return out
}

// get fetches url from the client host on c and returns the node that answered.
func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(resp.Status)
	}
	return strings.TrimRight(string(b), "\n\x00"), nil
}
