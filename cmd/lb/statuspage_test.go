package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"outrigger/internal/lbtest"
)

// chromiumPath finds Debian's chromium. Without it the browser tests skip,
// except as root, where CI (.ci/run) installs it: there they must run.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Geteuid() == 0 {
		t.Fatal("chromium not found: as root (CI) it must be installed (apt-get install chromium; .ci/run does)")
	}
	t.Skip("chromium not found (apt-get install chromium) and not root: the status page is not tested in a browser here")
	return ""
}

// browser starts a headless Chromium with the flags that keep it off the
// network (notes/DEPENDENCIES.md §7) and returns a tab's context. It collects
// the console: log() returns what was written so far.
func browser(t *testing.T) (ctx context.Context, log func() []chromedp.ConsoleMessage) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // root in CI; the page is our own
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		// Chromium keeps shared-memory files in $TMPDIR (disable-dev-shm-usage) and does not
		// always remove them: give it a directory the test removes.
		chromedp.Env("TMPDIR="+t.TempDir()),
		chromedp.WindowSize(1500, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 2*time.Minute)
	var mu sync.Mutex
	var msgs []chromedp.ConsoleMessage
	done := make(chan struct{})
	console := chromedp.Console(ctx)
	go func() {
		defer close(done)
		for m, err := range console {
			if err != nil {
				return
			}
			mu.Lock()
			msgs = append(msgs, m)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc()
		<-done
	})
	return ctx, func() []chromedp.ConsoleMessage {
		mu.Lock()
		defer mu.Unlock()
		return append([]chromedp.ConsoleMessage(nil), msgs...)
	}
}

// artifactDir is where tests keep files for people to look at after a run:
// $LB_TEST_ARTIFACTS, else outrigger-test-artifacts in the temporary directory, or
// outrigger-test-artifacts-UID when that one is another user's.
func artifactDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("LB_TEST_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir := filepath.Join(os.TempDir(), "outrigger-test-artifacts")
	if os.MkdirAll(dir, 0o755) == nil && writable(dir) {
		return dir
	}
	dir = fmt.Sprintf("%s-%d", dir, os.Getuid())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writable reports whether this process can create files in dir.
func writable(dir string) bool {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return false
	}
	f.Close()
	return os.Remove(f.Name()) == nil
}

// pageRow is one backend row of the status page, as shown.
type pageRow struct {
	Name, State, Health, Since, Rate, P50, P99, Codes string
}

const readRows = `Array.from(document.querySelectorAll("#backends tr")).map(tr => ({
	Name: tr.dataset.backend,
	State: tr.querySelector(".c-state").textContent,
	Health: tr.querySelector(".c-health").textContent,
	Since: tr.querySelector(".c-since").textContent,
	Rate: tr.querySelector(".c-rate").textContent,
	P50: tr.querySelector(".c-p50").textContent,
	P99: tr.querySelector(".c-p99").textContent,
	Codes: tr.querySelector(".c-codes").textContent,
}))`

// TestStatusPageInBrowser opens the status page of a real lb in headless
// Chromium, through a proxy the test can break (as an ssh tunnel would be):
// the page loads under its strict CSP without a violation, asks for the
// token, shows three backends with their rates, latencies and status codes
// and lb's own state, shows a drain within 3 s and a killed backend as down,
// says so when its reads fail and keeps retrying until they work again. A
// screenshot is kept (the test logs where).
func TestStatusPageInBrowser(t *testing.T) {
	ctx, consoleLog := browser(t)

	b1, b2, b3 := newBackend(t, "app-1", nil), newBackend(t, "app-2", nil), newBackend(t, "app-3", nil)
	dir := t.TempDir()
	certPath, keyPath, cert := lbtest.SelfSigned(t, dir, 1, 90*24*time.Hour, "lb.test")
	l := startLB(t, lbConfig{dir: dir, backends: []*testBackend{b1, b2, b3},
		extra: "tls:\n  cert_file: " + certPath + "\n  key_file: " + keyPath + "\n"})
	l.waitHealthy("app-1", "app-2", "app-3")

	var broken atomic.Bool
	target, err := url.Parse("http://" + l.addrs["admin"])
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			http.Error(w, "tunnel down", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	// Traffic through lb while the page watches: bounded, and over when the test ends.
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	stopLoad := make(chan struct{})
	var loadDone sync.WaitGroup
	loadDone.Go(func() {
		hc := &http.Client{Timeout: 5 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "lb.test"}}}
		for range 20000 {
			select {
			case <-stopLoad:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if resp, err := hc.Get("https://" + l.addrs["https"] + "/page-load"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	})
	t.Cleanup(func() { close(stopLoad); loadDone.Wait() })

	// Count CSP violations as the page sees them, from before its first script.
	cspProbe := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.__csp = []; document.addEventListener("securitypolicyviolation",
				e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`,
		})
		return err
	})
	text := func(id string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById(`+fmt.Sprintf("%q", id)+`).textContent`))
		if err != nil {
			t.Fatalf("read #%s: %v", id, err)
		}
		return s
	}
	if err := chromedp.Do(ctx, cspProbe, chromedp.Navigate(front.URL+"/"), chromedp.WaitVisible("#token")); err != nil {
		t.Fatalf("load the page: %v", err)
	}
	if hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("status").hidden`)); err != nil || !hidden {
		t.Errorf("before the token: status hidden %t (%v), want hidden", hidden, err)
	}
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(lctx, chromedp.SendKeys("#token", testToken), chromedp.Click(`#login button[type="submit"]`),
		chromedp.WaitVisible("#backend-table")); err != nil {
		t.Fatalf("log in: %v; #error = %q", err, text("error"))
	}

	checkMetricsMath(t, ctx)

	rows := func() map[string]pageRow {
		t.Helper()
		list, err := chromedp.Run(ctx, chromedp.Evaluate[[]pageRow](readRows))
		if err != nil {
			t.Fatalf("read the rows: %v", err)
		}
		out := map[string]pageRow{}
		for _, r := range list {
			out[r.Name] = r
		}
		return out
	}
	waitPage := func(what string, timeout time.Duration, cond func(map[string]pageRow) bool) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			r := rows()
			if cond(r) {
				return time.Since(start)
			}
			if time.Since(start) > timeout {
				t.Fatalf("the page did not show %s within %s; it shows %+v\nerror: %q", what, timeout, r, text("error"))
			}
			time.Sleep(50 * time.Millisecond) // polling the DOM; the page itself updates every second
		}
	}

	// Three backends, up, with a rate, a latency and status codes of the last minute.
	waitPage("three healthy backends with traffic figures", 20*time.Second, func(r map[string]pageRow) bool {
		if len(r) != 3 {
			return false
		}
		for _, n := range []string{"app-1", "app-2", "app-3"} {
			if r[n].Health != "up" || r[n].State != "active" || r[n].Rate == "-" || r[n].P50 == "-" ||
				!strings.Contains(r[n].Codes, "200: ") {
				return false
			}
		}
		return true
	})
	for n, r := range rows() {
		if !strings.HasSuffix(r.Since, " s") && !strings.HasSuffix(r.Since, " min") {
			t.Errorf("%s: since %q, want an age", n, r.Since)
		}
		if !strings.HasSuffix(r.P50, " ms") {
			t.Errorf("%s: p50 %q, want milliseconds", n, r.P50)
		}
	}
	// lb's own state.
	for id, want := range map[string]string{
		"lb-ready":    "yes",
		"lb-failopen": "no",
		"lb-reload":   "ok (start, ",
		"cert-rows":   "lb.test",
		"lb-rate":     "/s",
	} {
		if got := text(id); !strings.Contains(got, want) {
			t.Errorf("#%s = %q, want it to contain %q", id, got, want)
		}
	}
	if got := text("cert-rows"); !strings.Contains(got, "in 89 d") && !strings.Contains(got, "in 90 d") {
		t.Errorf("certificate row %q, want it to expire in about 90 days", got)
	}

	// A drain shows within 3 s of the API's answer.
	if _, err := l.client.Drain(context.Background(), "app-2"); err != nil {
		t.Fatal(err)
	}
	took := waitPage("app-2 draining", 10*time.Second, func(r map[string]pageRow) bool { return r["app-2"].State == "draining" })
	t.Logf("the drain showed after %s", took)
	if took > 3*time.Second {
		t.Errorf("the drain showed after %s, want within 3 s", took)
	}

	// A killed backend shows as down.
	b3.srv.CloseClientConnections()
	b3.srv.Close()
	took = waitPage("app-3 down", 15*time.Second, func(r map[string]pageRow) bool { return r["app-3"].Health == "down" })
	t.Logf("the kill showed after %s", took)
	if since := rows()["app-3"].Since; !strings.HasSuffix(since, " s") {
		t.Errorf("app-3 since %q, want seconds since it went down", since)
	}

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shotPath := filepath.Join(artifactDir(t), "status-page.png")
	if err := os.WriteFile(shotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the status page: %s", shotPath)

	// The admin API goes away: the page says so, dims the figures, and keeps trying.
	broken.Store(true)
	start := time.Now()
	for !strings.Contains(text("error"), "retrying every") {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the page did not report the failing reads; #error = %q", text("error"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := text("error"); !strings.Contains(got, "502") || !strings.Contains(got, "Last update") {
		t.Errorf("#error = %q, want the status and the time of the last update", got)
	}
	broken.Store(false)
	if _, err := l.client.Enable(context.Background(), "app-2"); err != nil {
		t.Fatal(err)
	}
	waitPage("recovery after the reads work again", 10*time.Second, func(r map[string]pageRow) bool {
		return r["app-2"].State == "active" && text("error") == ""
	})

	// No CSP violation, and no script error, in the whole run.
	violations, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__csp`))
	if err != nil {
		t.Fatalf("read CSP violations: %v", err)
	}
	if len(violations) > 0 {
		t.Errorf("CSP violations: %q", violations)
	}
	cspOrError := func(m chromedp.ConsoleMessage) bool {
		return m.IsException() || strings.Contains(m.Text, "Content Security Policy") || m.Source == "security"
	}
	for _, m := range consoleLog() {
		if cspOrError(m) {
			t.Errorf("console: %s %s (%s:%d)", m.Type, jsString(m.Text), m.URL, m.Line)
		}
	}
	// The probes see a violation when there is one: an inline style, which the CSP forbids.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.body.setAttribute("style", "color: red")`)); err != nil {
		t.Fatal(err)
	}
	lbtest.WaitFor(t, 10*time.Second, "the probes to see a deliberate CSP violation", func() bool {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__csp`))
		seen := false
		for _, m := range consoleLog() {
			seen = seen || cspOrError(m)
		}
		return err == nil && len(v) == 1 && strings.HasPrefix(v[0], "style-src") && seen
	})
}

// checkMetricsMath runs the page's arithmetic (metrics.js) in the browser on
// two scrapes ten seconds apart and compares it with what PromQL's rate()
// and histogram_quantile() give for them.
func checkMetricsMath(t *testing.T, ctx context.Context) {
	t.Helper()
	const before = `# HELP lb_requests_total Proxied requests.
# TYPE lb_requests_total counter
lb_requests_total{backend="app-1",code="200"} 1000
lb_requests_total{backend="app-1",code="502"} 10
lb_requests_total{backend="app-2",code="200"} 500
lb_request_duration_seconds_bucket{backend="app-1",le="0.005"} 100
lb_request_duration_seconds_bucket{backend="app-1",le="0.01"} 600
lb_request_duration_seconds_bucket{backend="app-1",le="0.025"} 1000
lb_request_duration_seconds_bucket{backend="app-1",le="+Inf"} 1010
lb_request_duration_seconds_bucket{backend="app-2",le="0.005"} 500
lb_request_duration_seconds_bucket{backend="app-2",le="+Inf"} 500
lb_fail_open_total 3
lb_retries_total{reason="dial"} 1
lb_retries_total{reason="reset"} 0
lb_build_info{version="v \"quoted\", with a comma"} 1
`
	// app-1: 100 more requests (90 of 200, 10 of 502): 10/s, half under 5 ms, ...
	// app-2 restarted its counters (removed and added back): 20 since.
	const after = `lb_requests_total{backend="app-1",code="200"} 1090
lb_requests_total{backend="app-1",code="502"} 20
lb_requests_total{backend="app-2",code="200"} 20
lb_request_duration_seconds_bucket{backend="app-1",le="0.005"} 150
lb_request_duration_seconds_bucket{backend="app-1",le="0.01"} 690
lb_request_duration_seconds_bucket{backend="app-1",le="0.025"} 1098
lb_request_duration_seconds_bucket{backend="app-1",le="+Inf"} 1110
lb_request_duration_seconds_bucket{backend="app-2",le="0.005"} 0
lb_request_duration_seconds_bucket{backend="app-2",le="0.01"} 20
lb_request_duration_seconds_bucket{backend="app-2",le="+Inf"} 20
lb_fail_open_total 5
lb_retries_total{reason="dial"} 4
lb_retries_total{reason="reset"} 1
`
	type quant struct {
		Value       float64
		Over, Under bool
	}
	type backendView struct {
		Rate          float64
		Codes         map[string]float64
		P50, P90, P99 *quant
	}
	var got struct {
		Seconds  float64
		Lb       struct{ Rate, FailOpen, Retries float64 }
		Backends map[string]backendView
		Label    string
	}
	js := `(() => {
		const m = window.lbMetrics;
		const w = new m.Window(60000);
		const first = m.parse(` + jsString(before) + `);
		w.add(m.snapshot(first, 0));
		w.add(m.snapshot(m.parse(` + jsString(after) + `), 10000));
		const v = w.view();
		const out = {Seconds: v.seconds, Lb: {Rate: v.lb.rate, FailOpen: v.lb.failOpen, Retries: v.lb.retries}, Backends: {},
			Label: first.find(s => s.name === "lb_build_info").labels.version};
		for (const [n, b] of Object.entries(v.backends)) {
			const q = (x) => x && {Value: x.value, Over: !!x.over, Under: !!x.under};
			out.Backends[n] = {Rate: b.rate, Codes: b.codes, P50: q(b.p50), P90: q(b.p90), P99: q(b.p99)};
		}
		return JSON.stringify(out);
	})()`
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("metrics.js in the browser: %v", err)
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
	a1, a2 := got.Backends["app-1"], got.Backends["app-2"]
	checks := []struct {
		what string
		ok   bool
	}{
		{"window of 10 s", near(got.Seconds, 10)},
		{"lb rate 12/s (100 + 20 after a reset)", near(got.Lb.Rate, 12)},
		{"2 failed open, 4 retried", near(got.Lb.FailOpen, 2) && near(got.Lb.Retries, 4)},
		{"app-1 10/s", near(a1.Rate, 10)},
		{"app-1 codes 200: 90, 502: 10", near(a1.Codes["200"], 90) && near(a1.Codes["502"], 10) && len(a1.Codes) == 2},
		// 100 observations: 50 under 5 ms, 40 in (5, 10], 8 in (10, 25], 2 above.
		{"app-1 p50 under 5 ms", a1.P50 != nil && near(a1.P50.Value, 0.005) && a1.P50.Under},
		{"app-1 p90 10 ms", a1.P90 != nil && near(a1.P90.Value, 0.01) && !a1.P90.Over && !a1.P90.Under},
		{"app-1 p99 above 25 ms", a1.P99 != nil && near(a1.P99.Value, 0.025) && a1.P99.Over},
		{"app-2 20 in 10 s after its counters restarted", near(a2.Rate, 2) && near(a2.Codes["200"], 20)},
		{"app-2 p50 7.5 ms", a2.P50 != nil && near(a2.P50.Value, 0.0075)},
		{"an escaped label value", got.Label == `v "quoted", with a comma`},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("metrics.js: %s: got %s", c.what, raw)
		}
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}
