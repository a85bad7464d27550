package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// TestAlertRulesMetrics checks that every lb_* metric the alert rules
// (deploy/prometheus/alerts.yml) use is one a running lb exports, with the
// labels the rules match on: a rule on a misspelt or renamed metric would
// never fire. The lb here runs with TLS, a backend and a request behind it,
// so that series which appear only after their first event are there.
func TestAlertRulesMetrics(t *testing.T) {
	rules, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\blb_[a-z0-9_]+`).FindAllString(string(rules), -1) {
		used[m] = true
	}
	if len(used) < 10 {
		t.Fatalf("the rules use %d lb_ metrics (%v), want at least 10", len(used), used)
	}

	b := newBackend(t, "app-1", nil)
	dir := t.TempDir()
	certPath, keyPath, cert := lbtest.SelfSigned(t, dir, 1, 24*time.Hour, "lb.test")
	l := startLB(t, lbConfig{dir: dir, backends: []*testBackend{b},
		extra: "tls:\n  cert_file: " + certPath + "\n  key_file: " + keyPath + "\n"})
	l.waitHealthy("app-1")
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "lb.test"}}}
	resp, err := hc.Get("https://" + l.addrs["https"] + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	text := l.scrape(t)
	exported := seriesLabels(text)
	// Labels the rules join and group on, per metric.
	wantLabels := map[string][]string{
		"lb_backend_up":                           {"backend"},
		"lb_backend_draining":                     {"backend"},
		"lb_requests_total":                       {"backend", "code"},
		"lb_health_checks_total":                  {"backend", "result"},
		"lb_certificate_expiry_timestamp_seconds": {"name"},
		"lb_build_info":                           {"version"},
	}
	for name := range used {
		labels, ok := exported[name]
		if !ok {
			t.Errorf("alerts.yml uses %s, which lb does not export", name)
			continue
		}
		for _, l := range wantLabels[name] {
			if !strings.Contains(" "+strings.Join(labels, " ")+" ", " "+l+" ") {
				t.Errorf("alerts.yml matches %s on label %q, which lb's series lack (they have %v)", name, l, labels)
			}
		}
	}
	// The health-check results the rules select must be results lb reports.
	for _, m := range regexp.MustCompile(`result="([a-z]+)"`).FindAllStringSubmatch(string(rules), -1) {
		switch m[1] {
		case "ok", "fail", "draining", "degraded":
		default:
			t.Errorf("alerts.yml selects lb_health_checks_total{result=%q}, which lb never reports", m[1])
		}
	}
}
