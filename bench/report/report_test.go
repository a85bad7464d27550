package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestStat(t *testing.T) {
	tests := []struct {
		in   []float64
		want Stat
	}{
		{nil, Stat{}},
		{[]float64{3}, Stat{3, 3, 3}},
		{[]float64{5, 1, 3}, Stat{1, 3, 5}},
		{[]float64{4, 1, 3, 2}, Stat{1, 2.5, 4}},
	}
	for _, tc := range tests {
		if got := stat(tc.in); got != tc.want {
			t.Errorf("stat(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

const sample = "mode\ttarget\tround\trps\trequests\tp50_us\tp99_us\tmax_us\terrors\trss_kb\tcpu_us_per_req\n" +
	"http\tcaddy\t1\t10000\t50000\t4000\t9000\t12000\t0\t50000\t100\n" +
	"http\tlb\t1\t30000\t150000\t1500\t5000\t8000\t0\t20000\t30\n" +
	"http\thaproxy\t1\t40000\t200000\t1200\t4000\t6000\t0\t15000\t20\n" +
	"http\tdirect\t1\t70000\t350000\t600\t3000\t5000\t0\t17000\t14\n" +
	"http\tlb\t2\t20000\t100000\t1500\t9000\t9000\t2\t41000\t40\n" +
	"http\tcaddy\t2\t12000\t60000\t4000\t9000\t12000\t0\t50000\t100\n" +
	"http\thaproxy\t2\t42000\t210000\t1200\t4000\t6000\t0\t15000\t20\n" +
	"http\tdirect\t2\t72000\t360000\t600\t3000\t5000\t0\t17000\t14\n" +
	"https\tlb\t1\t9000\t45000\t6000\t9000\t9900\t0\t30000\t120\t5.5\n" +
	"h2\tlb\t1\t18000\t90000\t6000\t9000\t9900\t0\t30000\t40\t5.5\n" +
	"h2\tnginx\t1\t17000\t85000\t6000\t9000\t9900\t0\t30000\t27\t3\n" +
	"h2\thaproxy\t1\t33000\t165000\t6000\t9000\t9900\t0\t30000\t13\t1\n" +
	"http-pinned\tlb\t1\t20000\t100000\t6000\t9000\t9900\t0\t30000\t21\t5.5\n" +
	"http-pinned\thaproxy\t1\t25000\t125000\t6000\t9000\t9900\t0\t30000\t13\t1\n"

func TestParseAndSummarize(t *testing.T) {
	runs, err := parseRuns(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(runs), 14; got != want {
		t.Fatalf("got %d runs, want %d", got, want)
	}
	sums := summarize(runs, "http")
	var order []string
	for _, s := range sums {
		order = append(order, s.Target)
	}
	if got, want := strings.Join(order, ","), "direct,lb,haproxy,caddy"; got != want {
		t.Errorf("got target order %s, want %s", got, want)
	}
	lb, _ := find(sums, "lb")
	if lb.RPS != (Stat{20000, 25000, 30000}) || lb.Errors != 2 || lb.Requests != 250000 {
		t.Errorf("lb summary: got %+v", lb)
	}
}

func TestChecks(t *testing.T) {
	runs, err := parseRuns(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, c := range checks(runs) {
		if c.known {
			got[c.what] = c.met
		}
	}
	want := map[string]bool{
		"http: lb req/s ≥ 2× caddy":         true,  // 25000 ≥ 2×11000
		"http: lb req/s ≥ 0.6× haproxy":     true,  // 25000 ≥ 0.6×41000
		"http: lb CPU/req ≤ 2× haproxy":     true,  // 35 ≤ 40
		"http: lb p99 ≤ haproxy p99 + 2 ms": false, // 7000 > 4000 + 2000
		"http: lb peak RSS ≤ 40 MB":         false, // 41000 kB
		"https: lb peak RSS ≤ 40 MB":        true,  // 30000 kB
		// Issue 13.
		"h2: lb req/s ≥ 1× nginx":                  true,  // 18000 ≥ 17000
		"h2: lb CPU/req ≤ 3.5× haproxy":            true,  // 40 ≤ 45.5
		"http-pinned: lb req/s ≥ 0.75× haproxy":    true,  // 20000 ≥ 18750
		"http-pinned: lb CPU/req ≤ 1.5× haproxy":   false, // 21 > 19.5
		"h2: lb p99 ≤ haproxy p99 + 2 ms":          true,
		"h2: lb peak RSS ≤ 40 MB":                  true,
		"http-pinned: lb p99 ≤ haproxy p99 + 2 ms": true,
		"http-pinned: lb peak RSS ≤ 40 MB":         true,
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("check %q missing", k)
			continue
		}
		if g != w {
			t.Errorf("check %q: got met=%v, want %v", k, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d known checks, want %d: %v", len(got), len(want), got)
	}
}

func TestParseRejectsBadLines(t *testing.T) {
	for _, in := range []string{
		"header\n",
		"header\nhttp\tlb\t1\n",
		"header\nhttp\tlb\t1\tx\t1\t1\t1\t1\t0\t1\t1\n",
	} {
		if _, err := parseRuns(strings.NewReader(in)); err == nil {
			t.Errorf("parseRuns(%q): got nil error, want one", in)
		}
	}
}

func TestWriteReport(t *testing.T) {
	runs, err := parseRuns(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	writeReport(&buf, runs, []string{"command=bench/run.sh"}, []string{"status: passed", "kill -9 app-2: 418 requests, 0 failed"})
	out := buf.String()
	for _, want := range []string{
		"- command: bench/run.sh",
		"## Plain HTTP, keep-alive (`http`)",
		"| lb | 2 | 25000 [20000–30000] | 0.35× |",
		"| http: lb p99 ≤ haproxy p99 + 2 ms | NO |",
		"## Every run",
		"## Failover and deploy",
		"- kill -9 app-2: 418 requests, 0 failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "| lb | 1 | 9000 [9000–9000] | – | 6.00 | 9.00 [9.00–9.00] | 120.0 [120.0–120.0] | 5.5 | 29.3 | 0 |") {
		t.Errorf("report lacks the https lb row with its r+w column:\n%s", out)
	}
	if strings.Contains(out, "## HTTPS, one TLS") {
		t.Error("report has a handshake section without handshake runs")
	}
}
