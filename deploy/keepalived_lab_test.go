package deploy

import (
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"outrigger/internal/lab"
	"outrigger/internal/lbtest"
)

// TestKeepalivedPair runs keepalived/keepalived.conf and lb-notify.sh on two lab hosts
// around stand-in lbs, and breaks things in turn: the address is held by exactly one
// node; it moves within 3 s when the holder's host crashes, when its check fails and when
// its lb process dies (within 1.5 s: track_process); the node that recovers never takes it
// back; a partition between the two makes both hold it, and healing leaves it with the
// higher-addressed one; a response in flight on the old holder when the address moved
// (SIGTERM) still reaches the client.
func TestKeepalivedPair(t *testing.T) {
	p := newPair(t, pairOptions{shutdownDelay: 8 * time.Second})
	first := p.waitHolder(t, 5*time.Second)
	p.stays(t, first, time.Second)
	for _, n := range p.nodes {
		if v, err := n.host.Sysctl("net.ipv4.conf.all.arp_ignore"); err != nil || v != "1" {
			t.Errorf("%s: arp_ignore %q (%v), want 1 (set by lb-notify.sh)", n.name(), v, err)
		}
	}
	checkLo(t, p)
	if log := first.notifyLog(); !strings.Contains(log, "INSTANCE lb is MASTER (priority 100), virtual IP "+p.vip.String()) {
		t.Errorf("%s's notify log does not record its MASTER transition:\n%s", first.name(), log)
	}
	if got := first.hookLog(); !strings.Contains(got, "MASTER "+p.vip.String()) {
		t.Errorf("%s's hook calls: %q, want MASTER %s", first.name(), got, p.vip)
	}
	client := &http.Client{Transport: p.client.HTTPTransport(), Timeout: 10 * time.Second}
	defer client.Transport.(*http.Transport).CloseIdleConnections()
	url := "http://" + net.JoinHostPort(p.vip.String(), "80") + "/"
	if got, err := get(client, url); err != nil || got != first.name() {
		t.Fatalf("GET the virtual IP: %q, %v; want an answer from %s", got, err, first.name())
	}

	t.Log("the holder's host crashes")
	second := p.other(first)
	if err := first.host.Crash(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s took over %v after the crash", second.name(), p.waitMove(t, second, 3*time.Second))
	if err := first.host.Boot(t.Context()); err != nil {
		t.Fatal(err)
	}
	p.start(t, first)
	recovered(t, p, first)
	p.stays(t, second, 2*time.Second)

	t.Log("the holder's check fails")
	if err := os.WriteFile(second.failFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s took over %v after the check began to fail", first.name(), p.waitMove(t, first, 5*time.Second))
	if err := os.Remove(second.failFile); err != nil {
		t.Fatal(err)
	}
	recovered(t, p, second)
	p.stays(t, first, 2*time.Second)

	t.Log("the holder's lb process is killed")
	if err := first.lb.Kill(); err != nil {
		t.Fatal(err)
	}
	d := p.waitMove(t, second, 3*time.Second)
	t.Logf("%s took over %v after the kill", second.name(), d)
	if d > 1500*time.Millisecond {
		t.Errorf("took %v: track_process should hand the address over at once (is it working?):\n%s", d, first.keepalived.Log())
	}
	p.startLB(t, first)
	recovered(t, p, first)
	p.stays(t, second, 2*time.Second)
	checkLo(t, p)

	t.Log("the two lbs are cut from each other, then healed")
	if err := p.lab.Partition(t.Context(), first.host, second.host); err != nil {
		t.Fatal(err)
	}
	lbtest.WaitFor(t, 3*time.Second, "both nodes MASTER (two nodes cannot break the tie)", func() bool { return len(p.holders(t)) == 2 })
	if err := p.lab.Heal(t.Context(), first.host, second.host); err != nil {
		t.Fatal(err)
	}
	higher := p.nodes[1] // lb-b has the higher address: at equal priorities it wins
	t.Logf("%s alone held the address %v after the partition healed", higher.name(), p.waitMove(t, higher, 2*time.Second))
	mac := macOf(t, higher)
	lbtest.WaitFor(t, 3*time.Second, "the client's ARP entry for the address pointing at "+higher.name(), func() bool {
		out, err := p.client.Run(t.Context(), "ip", "neigh", "show", p.vip.String())
		return err == nil && strings.Contains(out, mac)
	})

	checkLo(t, p)

	t.Log("the holder's lb stops (SIGTERM) with requests in flight and connections kept alive")
	plannedStop(t, p, higher, url)
}

// plannedStop SIGTERMs the holder's stand-in lb, which keeps serving for its shutdown
// delay while the address moves, and checks what clients see, as OPERATIONS.md tells it:
// the new holder hands the old holder's connections back to it (lb-notify.sh), so
// responses in flight at the move arrive whole, short or long, and a GET or a POST on a
// connection kept alive to the old holder is answered by it.
func plannedStop(t *testing.T, p *lbPair, holder *lbNode, url string) {
	next := p.other(holder)
	clients := map[string]*http.Client{}
	for _, name := range []string{"short", "long", "get", "post"} {
		tr := p.client.HTTPTransport()
		t.Cleanup(tr.CloseIdleConnections)
		clients[name] = &http.Client{Transport: tr, Timeout: 15 * time.Second}
		if got, err := get(clients[name], url); err != nil || got != holder.name() { // a kept-alive connection to the holder
			t.Fatalf("GET: %q, %v; want %s", got, err, holder.name())
		}
	}
	type answer struct {
		got string
		err error
	}
	short, long := make(chan answer, 1), make(chan answer, 1)
	go func() { got, err := get(clients["short"], url+"?sleep=6s"); short <- answer{got, err} }()
	go func() { got, err := get(clients["long"], url+"?sleep=6s&size=1000000"); long <- answer{got, err} }()
	time.Sleep(100 * time.Millisecond) // the requests reach the stand-in
	if err := holder.lb.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s took over %v after SIGTERM", next.name(), p.waitMove(t, next, 5*time.Second))
	if got, err := get(clients["get"], url); err != nil || got != holder.name() {
		t.Errorf("GET on a connection kept alive across the move: %q, %v; want %s's answer (handed back)", got, err, holder.name())
	}
	resp, err := clients["post"].Post(url, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Errorf("POST on a connection kept alive across the move: %v, want it answered (handed back)", err)
	} else {
		resp.Body.Close()
	}
	if a := <-short; a.err != nil || a.got != holder.name() {
		t.Errorf("a short response in flight at the move: %q, %v; want %s's (the address on its lo lets it out)", a.got, a.err, holder.name())
	}
	if a := <-long; a.err != nil || a.got != holder.name() {
		t.Errorf("a 1 MB response in flight at the move: %q, %v; want it whole from %s (the client's acknowledgements handed back)", a.got, a.err, holder.name())
	}
	// A new connection reaches the new holder.
	tr := p.client.HTTPTransport()
	defer tr.CloseIdleConnections()
	if got, err := get(&http.Client{Transport: tr, Timeout: 15 * time.Second}, url); err != nil || got != next.name() {
		t.Errorf("GET on a new connection after the move: %q, %v; want %s", got, err, next.name())
	}
}

// macOf is the MAC address of n's eth0.
func macOf(t testing.TB, n *lbNode) string {
	t.Helper()
	out, err := n.host.Run(t.Context(), "ip", "-br", "link", "show", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(out); len(f) >= 3 {
		return f[2]
	}
	t.Fatalf("ip -br link show eth0 on %s: %q", n.name(), out)
	return ""
}

// recovered waits until n's keepalived counts its lb ready again: its check has passed
// (rise times) and its lb process is back, so n is at priority 100 like its peer, and
// the address staying put afterwards means equal priorities do not preempt.
func recovered(t testing.TB, p *lbPair, n *lbNode) {
	t.Helper()
	lbtest.WaitFor(t, 15*time.Second, n.name()+" back at priority 100", func() bool {
		log := n.keepalived.Log()
		ok, failed := strings.LastIndex(log, "VRRP_Script(lb_ready) succeeded"), strings.LastIndex(log, "VRRP_Script(lb_ready) failed")
		lost, gained := strings.LastIndex(log, "Quorum lost"), strings.LastIndex(log, "Quorum gained")
		return ok > failed && (lost < 0 || gained > lost)
	})
}

// checkLo checks that the node not holding the virtual IP keeps it on lo, and the holder
// does not.
func checkLo(t *testing.T, p *lbPair) {
	t.Helper()
	holder := p.waitHolder(t, 5*time.Second)
	for _, n := range p.nodes {
		want := n != holder
		lbtest.WaitFor(t, 5*time.Second, n.name()+" lo", func() bool {
			addrs, err := n.host.Addrs()
			if err != nil {
				t.Fatal(err)
			}
			onLo := slices.ContainsFunc(addrs["lo"], func(a netip.Prefix) bool { return a.Addr() == p.vip })
			return onLo == want
		})
	}
}

// BenchmarkKeepalivedTakeover measures, one failover per iteration, how long the address
// takes to move and how long clients meet refused connections meanwhile, on the example
// configuration: run with -benchtime 5x (figures in ms; median and max).
//
//	go test -run '^$' -bench KeepalivedTakeover -benchtime 5x ./deploy/
func BenchmarkKeepalivedTakeover(b *testing.B) {
	cases := []struct {
		name  string
		opts  pairOptions
		fault func(b *testing.B, p *lbPair, n *lbNode)
	}{
		{"host-crash", pairOptions{}, func(b *testing.B, p *lbPair, n *lbNode) {
			if err := n.host.Crash(b.Context()); err != nil {
				b.Fatal(err)
			}
		}},
		{"lb-killed", pairOptions{}, killLB},
		{"lb-killed-check-only", pairOptions{noTrackProcess: true}, killLB},
		{"keepalived-stopped", pairOptions{}, func(b *testing.B, p *lbPair, n *lbNode) {
			if err := n.keepalived.Signal(syscall.SIGTERM); err != nil {
				b.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p := newPair(b, c.opts)
			addr := net.JoinHostPort(p.vip.String(), "80")
			var moves, refused []time.Duration
			for b.Loop() {
				b.StopTimer()
				holder := p.waitHolder(b, 5*time.Second)
				next := p.other(holder)
				recovered(b, p, next)
				stop := make(chan struct{})
				window := p.client.RefusalWindow(addr, stop)
				time.Sleep(50 * time.Millisecond)
				b.StartTimer()
				c.fault(b, p, holder)
				moves = append(moves, p.waitMove(b, next, 10*time.Second))
				b.StopTimer()
				time.Sleep(200 * time.Millisecond)
				close(stop)
				refused = append(refused, <-window)
				restart(b, p, holder)
				b.StartTimer()
			}
			reportMS(b, "move", moves)
			reportMS(b, "refused", refused)
		})
	}
}

// restart brings back what a fault took from n: its host, its lb, its keepalived.
func restart(b *testing.B, p *lbPair, n *lbNode) {
	if n.host.Crashed() {
		if err := n.host.Boot(b.Context()); err != nil {
			b.Fatal(err)
		}
		p.start(b, n)
		return
	}
	if exited(n.lb) {
		p.startLB(b, n)
	}
	if exited(n.keepalived) {
		p.startKeepalived(b, n)
	}
}

// exited reports whether p has exited, or exits within a second (it was told to stop).
func exited(p *lab.Proc) bool {
	select {
	case <-p.Exited():
		return true
	case <-time.After(time.Second):
		return false
	}
}

func killLB(b *testing.B, p *lbPair, n *lbNode) {
	if err := n.lb.Kill(); err != nil {
		b.Fatal(err)
	}
}

// reportMS reports the median and the max of ds in milliseconds.
func reportMS(b *testing.B, what string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, what+"-median-ms")
	b.ReportMetric(float64(ds[len(ds)-1].Microseconds())/1000, what+"-max-ms")
	b.Logf("%s: %v", what, ds)
}
