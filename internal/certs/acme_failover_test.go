package certs

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"outrigger/internal/lbconfig"
	"outrigger/internal/lbtest"
	"outrigger/internal/pgtest"
)

// TestACMEThroughDatabaseOutage: an lb issued a certificate through the PostgreSQL cache,
// then the database's host goes silent (a failover in progress). Handshakes for the name
// keep working with the certificate in memory without touching the database; an lb
// restarted meanwhile serves it from cache_dir after one bounded wait; a new name is
// refused without an order. Once the database is back, the new name is issued.
func TestACMEThroughDatabaseOutage(t *testing.T) {
	cl := pgtest.TCPCluster(t, pgtest.ClusterOptions{})
	px := pgtest.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", cl.Port()))
	dnsAddr := lbtest.StartDNS(t, nil)
	httpsLn := listen(t)
	p := lbtest.StartPebble(t, dnsAddr, deadPort(t), portNum(t, httpsLn.Addr().String()), 0)
	cfg := acmeConfig(p, t.TempDir(), testName, "new.lb.test")
	cfg.ACME.CacheDatabaseURL = px.DSN(cl.DSN("postgres")) + "&connect_timeout=1"
	cfg.ACME.CacheKeyFile = writeKeyFile(t)
	lb1 := startACMELB(t, cfg, httpsLn, nil)
	t.Cleanup(px.Heal) // before the lbs' pools close
	resp, _, err := get(t, lb1.https, testName, p.Roots)
	if err != nil {
		t.Fatalf("issuance: %v\nlogs:\n%s", err, lb1.logs)
	}
	leaf := checkChain(t, resp, p, testName)

	px.Blackhole()
	for i := range 10 {
		var err error
		if d := timed(func() { _, err = handshake(lb1.https, testName) }); d > margin {
			t.Errorf("handshake %d with the database silent took %v: it waited on the database", i, d)
		}
		if err != nil {
			t.Fatalf("handshake %d with the database silent: %v", i, err)
		}
	}

	lb2 := startACMELB(t, cfg, listen(t), nil) // lb1 restarted, same cache_dir
	for i := range 3 {
		var err error
		d := timed(func() { resp, _, err = get(t, lb2.https, testName, p.Roots) })
		if err != nil {
			t.Fatalf("restarted lb, request %d: %v\nlogs:\n%s", i, err, lb2.logs)
		}
		if bound := pgCallTimeout + margin; d > bound {
			t.Errorf("restarted lb, request %d took %v, want at most %v", i, d, bound)
		}
		if got := resp.TLS.PeerCertificates[0]; !got.Equal(leaf) {
			t.Errorf("restarted lb served serial %s, want %s", got.SerialNumber, leaf.SerialNumber)
		}
	}
	orders := p.Orders.Load()
	if _, err := handshake(lb2.https, "new.lb.test"); err == nil {
		t.Error("a new name was issued with the database silent")
	}
	if got := p.Orders.Load(); got != orders {
		t.Errorf("%d orders placed without the issuance lock", got-orders)
	}

	px.Heal()
	lbtest.WaitFor(t, 30*time.Second, "the new name once the database is back", func() bool {
		_, err := handshake(lb2.https, "new.lb.test")
		return err == nil
	})
	if got := p.Orders.Load(); got != orders+1 {
		t.Errorf("%d orders for the new name, want 1", got-orders)
	}
}

// TestRenewalWaitsForDatabase: a renewal that comes due while the database is down places
// no order (no issuance lock), is logged, and the certificate still valid keeps being
// served.
func TestRenewalWaitsForDatabase(t *testing.T) {
	ctx := t.Context()
	cl := pgtest.NewCluster(t, pgtest.ClusterOptions{})
	dnsAddr := lbtest.StartDNS(t, nil)
	httpsLn := listen(t)
	p := lbtest.StartPebble(t, dnsAddr, deadPort(t), portNum(t, httpsLn.Addr().String()), 20*time.Second)
	cfg := acmeConfig(p, t.TempDir(), testName)
	cfg.ACME.RenewBefore = 15 * time.Second // due 5 s after issuance
	cfg.ACME.CacheDatabaseURL = cl.DSN("postgres")
	cfg.ACME.CacheKeyFile = writeKeyFile(t)
	lb := startACMELB(t, cfg, httpsLn, nil)
	resp, _, err := get(t, lb.https, testName, p.Roots)
	if err != nil {
		t.Fatalf("issuance: %v\nlogs:\n%s", err, lb.logs)
	}
	leaf := checkChain(t, resp, p, testName)
	if err := cl.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	lbtest.WaitFor(t, 15*time.Second, "the renewal to be postponed", func() bool {
		return lb.logs.HasLine("certificate order postponed", testName)
	})
	if got := p.Orders.Load(); got != 1 {
		t.Errorf("%d orders, want 1: a renewal ordered without the issuance lock", got)
	}
	got, err := handshake(lb.https, testName)
	if err != nil || !got.Equal(leaf) {
		t.Errorf("handshake after the postponed renewal: %v; want the certificate still valid", err)
	}
}

// TestRenewalOneOrderForTwoLBs: two lbs share the PostgreSQL cache and the certificate; its
// renewal comes due on both within the same second or two. Exactly one order is placed;
// the other lb adopts the renewed certificate from the cache, or is refused its own order
// because the cache has it.
func TestRenewalOneOrderForTwoLBs(t *testing.T) {
	dsn := pgtest.DSN(t)
	dnsAddr := lbtest.StartDNS(t, nil)
	ln1, ln2 := listen(t), listen(t)
	p := lbtest.StartPebble(t, dnsAddr, deadPort(t), portNum(t, ln1.Addr().String()), 20*time.Second)
	keyFile := writeKeyFile(t)
	cfg := func() lbconfig.TLS {
		c := acmeConfig(p, t.TempDir(), testName)
		c.ACME.RenewBefore = 15 * time.Second
		c.ACME.CacheDatabaseURL = dsn
		c.ACME.CacheKeyFile = keyFile
		return c
	}
	lb1 := startACMELB(t, cfg(), ln1, nil)
	lb2 := startACMELB(t, cfg(), ln2, nil)
	var wg sync.WaitGroup
	leaves := make([]string, 2)
	for i, lb := range []*acmeLB{lb1, lb2} {
		wg.Go(func() {
			if leaf, err := handshake(lb.https, testName); err == nil {
				leaves[i] = leaf.SerialNumber.String()
			}
		})
	}
	wg.Wait()
	if leaves[0] == "" || leaves[0] != leaves[1] || p.Orders.Load() != 1 {
		t.Fatalf("first issuance: serials %q, %d orders; want one certificate on both\nlb1:\n%s\nlb2:\n%s", leaves, p.Orders.Load(), lb1.logs, lb2.logs)
	}
	first := leaves[0]
	renewed := func(lb *acmeLB) bool {
		leaf, err := handshake(lb.https, testName)
		return err == nil && leaf.SerialNumber.String() != first
	}
	lbtest.WaitFor(t, 30*time.Second, "both lbs to have renewed or been refused", func() bool {
		r1, r2 := renewed(lb1), renewed(lb2)
		refused1 := lb1.logs.HasLine("renewed by another lb")
		refused2 := lb2.logs.HasLine("renewed by another lb")
		return (r1 || refused1) && (r2 || refused2) && (r1 || r2)
	})
	time.Sleep(2 * time.Second) // a second order, if any, would be placed by now
	if got := p.Orders.Load(); got != 2 {
		t.Errorf("%d orders in all, want 2 (one issuance, one renewal)\nlb1:\n%s\nlb2:\n%s", got, lb1.logs, lb2.logs)
	}
}
