package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"testing"
	"time"

	"outrigger/internal/fleet"
	"outrigger/internal/labfleet"
)

// Helpers of the lab tests (pair_test.go): the highly available fleet of
// internal/labfleet, its users on the client host, and how failures are told apart.

// labUsers creates n users, each with its own client on the client host (its own
// connections to the virtual IP, cookies; every other one speaks HTTP/1.1, the rest
// HTTP/2) and one uploaded file of size bytes.
func labUsers(t testing.TB, f *labfleet.Fleet, prefix string, n, size int) []*user {
	t.Helper()
	var users []*user
	for i := range n {
		c := f.NewHTTPClient()
		if i%2 == 1 { // half of them on HTTP/1.1: lb's own HTTP/1 loop, not net/http's HTTP/2
			tr := c.Transport.(*http.Transport)
			tr.ForceAttemptHTTP2 = false
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		c.Jar, _ = cookiejar.New(nil)
		c.Timeout = 30 * time.Second
		t.Cleanup(c.CloseIdleConnections)
		u := newUserAt(t, f.URL, c, fmt.Sprintf("%s%d", prefix, i))
		u.upload(t, fmt.Sprintf("%s-%d.bin", prefix, i), size)
		users = append(users, u)
	}
	return users
}

// failures splits a load's failures into refused connections (the dead lb's host still
// holding the address, or no lb listening on it yet) and the rest (requests in flight on
// the dead lb, connections it took down).
func failures(r fleet.Result) (refused, other int) {
	for msg, n := range r.Reasons {
		if strings.Contains(msg, "connection refused") {
			refused += n
		} else {
			other += n
		}
	}
	return refused, other
}

// waitMove waits up to limit until to alone holds the virtual IP and returns how long
// that took.
func waitMove(t *testing.T, f *labfleet.Fleet, to *labfleet.LB, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if h, err := f.Holder(); err == nil && h == to {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h, err := f.Holder()
	t.Fatalf("the virtual IP did not move to %s within %v: holder %v, %v", to.Name, limit, h, err)
	return 0
}

// stays checks for d that lb alone holds the virtual IP all along.
func stays(t *testing.T, f *labfleet.Fleet, lb *labfleet.LB, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if h, err := f.Holder(); err != nil || h != lb {
			t.Fatalf("the virtual IP left %s: %v %v", lb.Name, h, err)
		}
	}
}

// recovered waits until lb is ready again and its keepalived counts it so (its check
// passed rise times): until then a fault of the other lb would find no one to move to.
func recovered(t *testing.T, f *labfleet.Fleet, lb *labfleet.LB) {
	t.Helper()
	waitFor(t, 30*time.Second, lb.Name+" ready", func() bool { return lb.Ready(t.Context()) == nil })
	time.Sleep(3 * time.Second) // rise 2 at interval 1s, with a margin
}

// refusalWindow is how long connections to the virtual IP from the client host were
// refused until stop is closed (lab.Host.RefusalWindow).
func refusalWindow(f *labfleet.Fleet, stop <-chan struct{}) <-chan time.Duration {
	return f.Client.RefusalWindow(net.JoinHostPort(f.VIP.String(), strconv.Itoa(labfleet.HTTPSPort)), stop)
}
