package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Run is one wrk run against one target.
type Run struct {
	Mode, Target string
	Round        int
	RPS          float64
	Requests     int64
	P50, P99     float64 // microseconds
	Max          float64 // microseconds
	Errors       int64
	RSSKB        float64
	CPUPerReq    float64 // microseconds of proxy CPU per request
	SysPerReq    float64 // read+write system calls of the proxy per request
}

// Stat is min, median and max of one metric over the rounds.
type Stat struct{ Min, Med, Max float64 }

// Summary is the aggregate of one target in one mode.
type Summary struct {
	Target                       string
	Runs                         int
	RPS, P50, P99, RSS, CPU, Sys Stat
	Errors, Requests             int64
}

// modeNames are the modes in report order, with their headings.
var modeNames = []struct{ key, title string }{
	{"http", "Plain HTTP, keep-alive"},
	{"https", "HTTPS, keep-alive"},
	{"hs", "HTTPS, one TLS handshake per request (Connection: close)"},
	{"h2", "HTTP/2 over TLS (h2load), load on one CPU, proxy and backends on the other"},
	{"http-pinned", "Plain HTTP, keep-alive, load on one CPU, proxy and backends on the other"},
}

// targetOrder is the column order of the tables.
var targetOrder = []string{"direct", "lb", "lbx", "haproxy", "nginx", "caddy"}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	runsPath := fs.String("runs", "bench/results/runs.tsv", "per-run records (TSV)")
	metaPath := fs.String("meta", "", "key=value lines describing the run (optional)")
	outPath := fs.String("out", "", "write the markdown here (default stdout)")
	e2ePath := fs.String("e2e", "", "failover and rollout figures from the end-to-end tests, one per line (optional)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	f, err := os.Open(*runsPath)
	if err != nil {
		return fmt.Errorf("open runs: %w", err)
	}
	defer f.Close()
	runs, err := parseRuns(f)
	if err != nil {
		return fmt.Errorf("parse %s: %w", *runsPath, err)
	}
	var meta []string
	if *metaPath != "" {
		b, err := os.ReadFile(*metaPath)
		if err != nil {
			return fmt.Errorf("read meta: %w", err)
		}
		meta = strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	var e2e []string
	if *e2ePath != "" {
		b, err := os.ReadFile(*e2ePath)
		if err != nil {
			return fmt.Errorf("read e2e figures: %w", err)
		}
		e2e = strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	w := stdout
	if *outPath != "" {
		out, err := os.Create(*outPath)
		if err != nil {
			return fmt.Errorf("create %s: %w", *outPath, err)
		}
		defer out.Close()
		w = out
	}
	bw := bufio.NewWriter(w)
	writeReport(bw, runs, meta, e2e)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// parseRuns reads the TSV written by run.sh (header line first).
func parseRuns(r io.Reader) ([]Run, error) {
	sc := bufio.NewScanner(r)
	var runs []Run
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if line == 1 || text == "" {
			continue
		}
		f := strings.Split(text, "\t")
		if len(f) != 11 && len(f) != 12 {
			return nil, fmt.Errorf("line %d: %d fields, want 11 or 12", line, len(f))
		}
		var nums [10]float64
		for i := range f[2:] {
			v, err := strconv.ParseFloat(f[i+2], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d field %d: %w", line, i+3, err)
			}
			nums[i] = v
		}
		runs = append(runs, Run{
			Mode: f[0], Target: f[1], Round: int(nums[0]), RPS: nums[1], Requests: int64(nums[2]),
			P50: nums[3], P99: nums[4], Max: nums[5], Errors: int64(nums[6]), RSSKB: nums[7], CPUPerReq: nums[8], SysPerReq: nums[9],
		})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, errors.New("no runs recorded")
	}
	return runs, nil
}

// stat returns min, median and max of xs (median of an even count: mean of the middle two).
func stat(xs []float64) Stat {
	if len(xs) == 0 {
		return Stat{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Stat{Min: s[0], Med: med, Max: s[n-1]}
}

// summarize groups runs of one mode by target, in targetOrder (unknown targets last).
func summarize(runs []Run, mode string) []Summary {
	by := map[string][]Run{}
	var order []string
	for _, r := range runs {
		if r.Mode != mode {
			continue
		}
		if _, ok := by[r.Target]; !ok {
			order = append(order, r.Target)
		}
		by[r.Target] = append(by[r.Target], r)
	}
	rank := func(t string) int {
		if i := slices.Index(targetOrder, t); i >= 0 {
			return i
		}
		return len(targetOrder)
	}
	slices.SortStableFunc(order, func(a, b string) int { return rank(a) - rank(b) })
	var out []Summary
	for _, t := range order {
		rs := by[t]
		col := func(get func(Run) float64) Stat {
			xs := make([]float64, len(rs))
			for i, r := range rs {
				xs[i] = get(r)
			}
			return stat(xs)
		}
		s := Summary{Target: t, Runs: len(rs)}
		s.RPS = col(func(r Run) float64 { return r.RPS })
		s.P50 = col(func(r Run) float64 { return r.P50 })
		s.P99 = col(func(r Run) float64 { return r.P99 })
		s.RSS = col(func(r Run) float64 { return r.RSSKB })
		s.CPU = col(func(r Run) float64 { return r.CPUPerReq })
		s.Sys = col(func(r Run) float64 { return r.SysPerReq })
		for _, r := range rs {
			s.Errors += r.Errors
			s.Requests += r.Requests
		}
		out = append(out, s)
	}
	return out
}

func find(sums []Summary, target string) (Summary, bool) {
	for _, s := range sums {
		if s.Target == target {
			return s, true
		}
	}
	return Summary{}, false
}

func ms(us float64) string { return strconv.FormatFloat(us/1000, 'f', 2, 64) }

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64) + "×"
}

func writeReport(w io.Writer, runs []Run, meta, e2e []string) {
	fmt.Fprintln(w, "# Outrigger lb vs HAProxy, nginx, Caddy")
	fmt.Fprintln(w)
	for _, m := range meta {
		if k, v, ok := strings.Cut(m, "="); ok {
			fmt.Fprintf(w, "- %s: %s\n", k, v)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Medians over the interleaved rounds, [min–max] beside them. CPU is the proxy's")
	fmt.Fprintln(w, "utime+stime (all its processes) per request; for `direct` it is the backend's.")
	fmt.Fprintln(w, "RSS is VmHWM (peak) summed over the proxy's processes. r+w is the proxy's read and")
	fmt.Fprintln(w, "write system calls per request (syscr+syscw of /proc/PID/io: read/readv/write/writev,")
	fmt.Fprintln(w, "not recv/send; so it compares the Go targets, while HAProxy and nginx read with recv).")
	for _, mode := range modeNames {
		sums := summarize(runs, mode.key)
		if len(sums) == 0 {
			continue
		}
		direct, hasDirect := find(sums, "direct")
		fmt.Fprintf(w, "\n## %s (`%s`)\n\n", mode.title, mode.key)
		fmt.Fprintln(w, "| target | runs | req/s median [min–max] | × direct | p50 ms | p99 ms [min–max] | CPU µs/req [min–max] | r+w /req | peak RSS MB | errors |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
		for _, s := range sums {
			xd := "–"
			if hasDirect {
				xd = ratio(s.RPS.Med, direct.RPS.Med)
			}
			fmt.Fprintf(w, "| %s | %d | %.0f [%.0f–%.0f] | %s | %s | %s [%s–%s] | %.1f [%.1f–%.1f] | %.1f | %.1f | %d |\n",
				s.Target, s.Runs, s.RPS.Med, s.RPS.Min, s.RPS.Max, xd, ms(s.P50.Med),
				ms(s.P99.Med), ms(s.P99.Min), ms(s.P99.Max), s.CPU.Med, s.CPU.Min, s.CPU.Max, s.Sys.Med, s.RSS.Max/1024, s.Errors)
		}
		if len(sums) > 1 {
			fmt.Fprintln(w, "\nRatios of median req/s (row ÷ column); in brackets, row's CPU per request ÷ column's:")
			fmt.Fprintln(w)
			fmt.Fprint(w, "| ÷ |")
			for _, c := range sums {
				fmt.Fprintf(w, " %s |", c.Target)
			}
			fmt.Fprint(w, "\n|---|")
			for range sums {
				fmt.Fprint(w, "---|")
			}
			fmt.Fprintln(w)
			for _, r := range sums {
				fmt.Fprintf(w, "| %s |", r.Target)
				for _, c := range sums {
					if r.Target == c.Target {
						fmt.Fprint(w, " – |")
						continue
					}
					fmt.Fprintf(w, " %s (%s) |", ratio(r.RPS.Med, c.RPS.Med), ratio(r.CPU.Med, c.CPU.Med))
				}
				fmt.Fprintln(w)
			}
		}
	}
	writeTargets(w, runs)
	if len(e2e) > 0 {
		fmt.Fprint(w, "\n## Failover and deploy (internal/e2e: TestOutage, TestRollout; HTTPS through lb, 3 apps)\n\n")
		for _, l := range e2e {
			if l = strings.TrimSpace(l); l != "" {
				fmt.Fprintf(w, "- %s\n", l)
			}
		}
	}
	fmt.Fprint(w, "\n## Every run\n\n")
	fmt.Fprintln(w, "| mode | round | target | req/s | p50 ms | p99 ms | max ms | CPU µs/req | r+w /req | RSS MB | errors |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range runs {
		fmt.Fprintf(w, "| %s | %d | %s | %.0f | %s | %s | %s | %.1f | %.1f | %.1f | %d |\n",
			r.Mode, r.Round, r.Target, r.RPS, ms(r.P50), ms(r.P99), ms(r.Max), r.CPUPerReq, r.SysPerReq, r.RSSKB/1024, r.Errors)
	}
}

// check is one of the targets of issues 6 and 13.
type check struct {
	what   string
	met    bool
	detail string
	known  bool // false when a target's data is missing
}

// checks evaluates the targets of issues 6 and 13 on the medians.
func checks(runs []Run) []check {
	var out []check
	get := func(mode, t string) (Summary, bool) { return find(summarize(runs, mode), t) }
	rpsAtLeast := func(mode, peer string, factor float64) {
		what := fmt.Sprintf("%s: lb req/s ≥ %s× %s", mode, strconv.FormatFloat(factor, 'f', -1, 64), peer)
		lb, ok1 := get(mode, "lb")
		p, ok2 := get(mode, peer)
		if !ok1 || !ok2 {
			out = append(out, check{what: what})
			return
		}
		out = append(out, check{what: what, known: true, met: lb.RPS.Med >= factor*p.RPS.Med,
			detail: fmt.Sprintf("%.0f vs %g×%.0f = %.0f (%s)", lb.RPS.Med, factor, p.RPS.Med, factor*p.RPS.Med, ratio(lb.RPS.Med, p.RPS.Med))})
	}
	rpsAtLeast("http", "caddy", 2)
	rpsAtLeast("http", "haproxy", 0.6)
	if lb, ok := get("http", "lb"); ok {
		if hp, ok := get("http", "haproxy"); ok {
			out = append(out, check{what: "http: lb CPU/req ≤ 2× haproxy", known: true, met: lb.CPU.Med <= 2*hp.CPU.Med,
				detail: fmt.Sprintf("%.1f µs vs 2×%.1f = %.1f µs (%s)", lb.CPU.Med, hp.CPU.Med, 2*hp.CPU.Med, ratio(lb.CPU.Med, hp.CPU.Med))})
		}
	}
	for _, mode := range []string{"https", "hs"} {
		rpsAtLeast(mode, "caddy", 1)
		rpsAtLeast(mode, "haproxy", 0.7)
	}
	// Issue 13.
	cpuAtMost := func(mode string, factor float64) {
		what := fmt.Sprintf("%s: lb CPU/req ≤ %s× haproxy", mode, strconv.FormatFloat(factor, 'f', -1, 64))
		lb, ok1 := get(mode, "lb")
		hp, ok2 := get(mode, "haproxy")
		if !ok1 || !ok2 {
			out = append(out, check{what: what})
			return
		}
		out = append(out, check{what: what, known: true, met: lb.CPU.Med <= factor*hp.CPU.Med,
			detail: fmt.Sprintf("%.1f µs vs %g×%.1f = %.1f µs (%s)", lb.CPU.Med, factor, hp.CPU.Med, factor*hp.CPU.Med, ratio(lb.CPU.Med, hp.CPU.Med))})
	}
	rpsAtLeast("h2", "nginx", 1)
	cpuAtMost("h2", 3.5)
	rpsAtLeast("http-pinned", "haproxy", 0.75)
	cpuAtMost("http-pinned", 1.5)
	for _, m := range modeNames {
		lb, ok1 := get(m.key, "lb")
		hp, ok2 := get(m.key, "haproxy")
		if ok1 && ok2 {
			out = append(out, check{what: m.key + ": lb p99 ≤ haproxy p99 + 2 ms", known: true, met: lb.P99.Med <= hp.P99.Med+2000,
				detail: fmt.Sprintf("%s ms vs %s + 2 ms", ms(lb.P99.Med), ms(hp.P99.Med))})
		}
		if ok1 {
			out = append(out, check{what: m.key + ": lb peak RSS ≤ 40 MB", known: true, met: lb.RSS.Max <= 40*1024,
				detail: fmt.Sprintf("%.1f MB", lb.RSS.Max/1024)})
		}
	}
	return out
}

func writeTargets(w io.Writer, runs []Run) {
	cs := checks(runs)
	fmt.Fprint(w, "\n## Targets of issues 6 and 13 (medians of this run)\n\n")
	fmt.Fprintln(w, "| target | met | figures |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, c := range cs {
		met := "no data"
		if c.known {
			met = "NO"
			if c.met {
				met = "yes"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", c.what, met, c.detail)
	}
}
