package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"outrigger/internal/admin"
	"outrigger/internal/lbtest"
)

// metricValue scrapes addr's /metrics and returns the value of the series
// that starts with series (a name, or a name and labels).
func metricValue(t *testing.T, addr, series string) (float64, bool) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(scrapeAddr(t, addr))
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: value %q: %v", series, m[1], err)
	}
	return v, true
}

// `lb reload` against a real lb process, the way lb.service's ExecReload runs
// it: the admin address and token come from the config file; a good file is
// applied, a refused one is reported with every problem and exit 2 while the
// running config stays, and a stopped lb is exit 1 naming where it was sought.
func TestReloadCommand(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "token", testToken+"\n")
	b1, b2, b3 := newBackend(t, "app-1", nil), newBackend(t, "app-2", nil), newBackend(t, "app-3", nil)
	adminAddr := freeLoopbackAddr(t)
	cfg := lbConfig{dir: dir, backends: []*testBackend{b1, b2}}
	render := func(c lbConfig) string {
		return strings.Replace(c.render(), "  listen: 127.0.0.1:0\n", "  listen: "+adminAddr+"\n", 1)
	}
	cfgPath := writeFile(t, dir, "lb.yaml", render(cfg))
	bin := buildLB(t, "v-reload")
	p := startProcess(t, bin, cfgPath)
	if p.addrs["admin"] != adminAddr {
		t.Fatalf("admin listens on %s, want %s", p.addrs["admin"], adminAddr)
	}
	client := &admin.Client{BaseURL: "http://" + adminAddr, Token: testToken}
	ctx := context.Background()

	if v, ok := metricValue(t, adminAddr, "lb_config_last_reload_successful"); !ok || v != 1 {
		t.Errorf("at start: lb_config_last_reload_successful = %v (present %v), want 1", v, ok)
	}
	started, ok := metricValue(t, adminAddr, "lb_config_last_reload_success_timestamp_seconds")
	if !ok || started <= 0 {
		t.Fatalf("at start: lb_config_last_reload_success_timestamp_seconds = %v (present %v)", started, ok)
	}
	last, err := client.LastReload(ctx)
	if err != nil || !last.OK || last.Trigger != "start" || last.Config != cfgPath {
		t.Errorf("GET /api/reload at start: %+v, %v; want ok, trigger start, config %s", last, err, cfgPath)
	}

	// A good file: applied, reported, the metric's timestamp moves.
	cfg.backends = []*testBackend{b1, b2, b3}
	writeFile(t, dir, "lb.yaml", render(cfg))
	code, out, errOut := runLBCommand(t, bin, nil, "reload", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, "http://"+adminAddr+": reloaded "+cfgPath) {
		t.Fatalf("good reload: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if list, err := client.Backends(ctx); err != nil || len(list) != 3 {
		t.Errorf("after a good reload: %d backends (%v), want 3", len(list), err)
	}
	if v, _ := metricValue(t, adminAddr, "lb_config_last_reload_success_timestamp_seconds"); v <= started {
		t.Errorf("success timestamp %v did not move past %v", v, started)
	}

	// A refused file: every problem printed, exit 2, metric 0, the running config unchanged.
	bad := strings.Replace(render(cfg), "backends:\n", "policy: fastest\nbackends:\n", 1)
	bad = strings.Replace(bad, b3.srv.URL, "ftp://nowhere", 1)
	writeFile(t, dir, "lb.yaml", bad)
	code, out, errOut = runLBCommand(t, bin, nil, "reload", "-config", cfgPath)
	if code != 2 {
		t.Errorf("refused reload: exit %d, want 2\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, want := range []string{cfgPath + ": ", "policy", "backends[2].url", "refused, running config kept"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("refused reload: stderr lacks %q:\n%s", want, errOut)
		}
	}
	if v, ok := metricValue(t, adminAddr, "lb_config_last_reload_successful"); !ok || v != 0 {
		t.Errorf("after a refused reload: lb_config_last_reload_successful = %v, want 0", v)
	}
	list, err := client.Backends(ctx)
	if err != nil || len(list) != 3 || list[2].URL != b3.srv.URL {
		t.Errorf("a refused reload changed the running backends: %+v, %v", list, err)
	}
	last, err = client.LastReload(ctx)
	if err != nil || last.OK || last.Trigger != "api" || !strings.Contains(last.Error, "policy") || last.LastSuccess.IsZero() {
		t.Errorf("GET /api/reload after a refusal: %+v, %v", last, err)
	}
	// SIGHUP is recorded the same way.
	writeFile(t, dir, "lb.yaml", render(cfg))
	p.signal(syscall.SIGHUP)
	lbtest.WaitFor(t, 10*time.Second, "the SIGHUP reload on /api/reload", func() bool {
		last, err = client.LastReload(ctx)
		return err == nil && last.Trigger == "signal"
	})
	if !last.OK || last.Error != "" {
		t.Errorf("GET /api/reload after SIGHUP: %+v; want ok", last)
	}
	if v, _ := metricValue(t, adminAddr, "lb_config_last_reload_successful"); v != 1 {
		t.Errorf("after a good SIGHUP: lb_config_last_reload_successful = %v, want 1", v)
	}

	// -admin and -token-file instead of the file; a different file is warned about.
	other := writeFile(t, dir, "other.yaml", render(cfg))
	code, out, errOut = runLBCommand(t, bin, nil, "reload", "-admin", "http://"+adminAddr, "-token-file", filepath.Join(dir, "token"), "-config", other)
	if code != 0 || !strings.Contains(errOut, "it reads "+cfgPath+", not "+other) {
		t.Errorf("reload naming another file: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	// lb not running.
	p.signal(syscall.SIGTERM)
	p.waitExit(15 * time.Second)
	code, out, errOut = runLBCommand(t, bin, nil, "reload", "-config", cfgPath)
	if code != 1 || !strings.Contains(errOut, "http://"+adminAddr) || !strings.Contains(errOut, "connection refused") {
		t.Errorf("reload with lb stopped: exit %d, want 1 naming %s and the refusal\nstdout: %s\nstderr: %s", code, adminAddr, out, errOut)
	}
}

// A config file without an admin block falls back to DESIGN's default
// address; one that is not YAML at all is a usage error naming the file.
func TestReloadCommandConfigFallbacks(t *testing.T) {
	dir := t.TempDir()
	notYAML := writeFile(t, dir, "broken.yaml", "listen: [\n")
	_, errOut, code := runCLI(t, nil, "reload", "-config", notYAML)
	if code != 2 || !strings.Contains(errOut, notYAML) || !strings.Contains(errOut, "pass -admin") {
		t.Errorf("reload with unparsable YAML: exit %d, stderr %q", code, errOut)
	}
	missing := filepath.Join(dir, "missing.yaml")
	if _, errOut, code = runCLI(t, nil, "reload", "-config", missing); code != 2 || !strings.Contains(errOut, "no such file") {
		t.Errorf("reload with a missing file: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("the missing file exists")
	}
	_, errOut, code = runCLI(t, nil, "reload")
	if code != 2 || !strings.Contains(errOut, "no admin API") {
		t.Errorf("reload without -config or -admin: exit %d, stderr %q", code, errOut)
	}
}
