package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"outrigger/internal/admin"
	"outrigger/internal/lbtest"
)

// lbPair is two real lbs in front of the same backends, as in a keepalived pair, and the
// admin URL of a third "lb" that is down.
type lbPair struct {
	a, b          *runningLB
	urlA, urlB    string
	dead          string // an admin URL on a closed port
	tokenFile     string
	backendsNames []string
}

func startPair(t *testing.T, backends ...*testBackend) *lbPair {
	t.Helper()
	p := &lbPair{
		a: startLB(t, lbConfig{backends: backends}),
		b: startLB(t, lbConfig{backends: backends}),
	}
	for _, be := range backends {
		p.backendsNames = append(p.backendsNames, be.name)
	}
	p.a.waitHealthy(p.backendsNames...)
	p.b.waitHealthy(p.backendsNames...)
	p.urlA, p.urlB = "http://"+p.a.addrs["admin"], "http://"+p.b.addrs["admin"]
	p.dead = healthBackend(t, "dead", "closed").srv.URL
	p.tokenFile = filepath.Join(dirOf(p.a.cfgPath), "token")
	return p
}

// env is the environment for the CLI with LB_ADMIN listing urls.
func (p *lbPair) env(urls ...string) map[string]string {
	return map[string]string{"LB_ADMIN": strings.Join(urls, ","), "LB_ADMIN_TOKEN_FILE": p.tokenFile}
}

// state returns a backend's state on l.
func state(t *testing.T, l *runningLB, name string) string {
	t.Helper()
	b, err := l.client.Backend(context.Background(), name)
	if err != nil {
		return "error: " + err.Error()
	}
	return b.State
}

// TestCLIPair runs every mutating command against two real lbs, with and without an
// unreachable third: each reachable lb takes the change even after one failed, each lb that
// did not take it has a line saying why (unreachable, 401, 404, 409), and the exit status is 1.
func TestCLIPair(t *testing.T) {
	app1 := newBackend(t, "app-1", nil)
	p := startPair(t, app1, newBackend(t, "app-2", nil))
	ctx := context.Background()

	out, errOut, code := runCLI(t, p.env(p.urlA, p.urlB), "drain", "app-2")
	if code != 0 || errOut != "" || !strings.Contains(out, p.urlA+": app-2 is draining") || !strings.Contains(out, p.urlB+": app-2 is draining") {
		t.Fatalf("drain on the pair: exit %d\n%s%s", code, out, errOut)
	}

	// The unreachable lb is in the middle: the one after it still takes the change.
	withDead := p.env(p.urlA, " "+p.dead+" ", p.urlB)
	out, errOut, code = runCLI(t, withDead, "enable", "app-2")
	t.Logf("enable with a dead lb:\n%s%s", out, errOut)
	if code != 1 || !strings.Contains(errOut, "lb "+p.dead+": enable app-2: FAILED: unreachable: ") ||
		!strings.Contains(errOut, "enable app-2: failed on 1 of 3 lb(s): "+p.dead) {
		t.Errorf("enable with a dead lb: exit %d\nstdout:\n%sstderr:\n%s", code, out, errOut)
	}
	for _, l := range []*runningLB{p.a, p.b} {
		if got := state(t, l, "app-2"); got != admin.StateActive {
			t.Errorf("app-2 after enable: %s, want active on every reachable lb", got)
		}
	}
	_, errOut, code = runCLI(t, nil, "drain", "-admin", p.dead, "-admin", p.urlA, "-admin", p.urlB, "-token-file", p.tokenFile, "app-1")
	if code != 1 || strings.Count(errOut, "FAILED") != 1 {
		t.Errorf("drain with -admin flags and a dead lb first: exit %d\n%s", code, errOut)
	}
	for _, l := range []*runningLB{p.a, p.b} {
		if got := state(t, l, "app-1"); got != admin.StateDraining {
			t.Errorf("app-1 after drain: %s, want draining on every reachable lb", got)
		}
	}
	if _, _, code = runCLI(t, p.env(p.urlA, p.urlB), "enable", "app-1"); code != 0 {
		t.Errorf("enable app-1 on the pair: exit %d", code)
	}

	// 409 on one lb: the other still adds.
	if _, err := p.a.client.Add(ctx, "app-3", app1.srv.URL); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runCLI(t, p.env(p.urlA, p.urlB), "add", "app-3", app1.srv.URL)
	if code != 1 || !strings.Contains(errOut, "lb "+p.urlA+": add app-3: FAILED: HTTP 409: ") || strings.Contains(errOut, "lb "+p.urlB) {
		t.Errorf("add taken on one lb already: exit %d\n%s", code, errOut)
	}
	if got := state(t, p.b, "app-3"); got != admin.StateActive {
		t.Errorf("app-3 on lb B: %s, want added", got)
	}
	if _, _, code = runCLI(t, p.env(p.urlA, p.urlB), "remove", "app-3"); code != 0 {
		t.Errorf("remove app-3 from the pair: exit %d", code)
	}
	// 404 on both: a line for each.
	_, errOut, code = runCLI(t, p.env(p.urlA, p.urlB), "remove", "app-3")
	if code != 1 || strings.Count(errOut, ": remove app-3: FAILED: HTTP 404: no such backend") != 2 {
		t.Errorf("remove of an unknown backend: exit %d\n%s", code, errOut)
	}

	// 401 from an lb with another token.
	odir := t.TempDir()
	writeFile(t, odir, "token", "another-token-0123456789abcdef\n")
	other := startLB(t, lbConfig{dir: odir, backends: []*testBackend{newBackend(t, "app-1", nil)}})
	urlO := "http://" + other.addrs["admin"]
	_, errOut, code = runCLI(t, p.env(urlO, p.urlA), "drain", "app-2")
	if code != 1 || !strings.Contains(errOut, "lb "+urlO+": drain app-2: FAILED: HTTP 401: ") {
		t.Errorf("drain with a wrong token on one lb: exit %d\n%s", code, errOut)
	}
	if got := state(t, p.a, "app-2"); got != admin.StateDraining {
		t.Errorf("app-2 on lb A: %s, want draining (the 401 on the other lb changes nothing here)", got)
	}
	runCLI(t, p.env(p.urlA), "enable", "app-2")

	// backends: each lb's view, labelled; the dead one reported, the rest still shown.
	out, errOut, code = runCLI(t, p.env(p.urlA, p.dead, p.urlB), "backends")
	if code != 1 || !strings.Contains(out, "== "+p.urlA+"\n") || !strings.Contains(out, "== "+p.urlB+"\n") ||
		strings.Count(out, "app-1") != 2 || !strings.Contains(errOut, "lb "+p.dead+": list backends: FAILED: unreachable") {
		t.Errorf("backends with a dead lb: exit %d\nstdout:\n%sstderr:\n%s", code, out, errOut)
	}
	out, _, code = runCLI(t, p.env(p.urlA, p.urlB), "backends", "-json")
	var views map[string][]admin.Backend
	if code != 0 || json.Unmarshal([]byte(out), &views) != nil || len(views[p.urlA]) != 2 || len(views[p.urlB]) != 2 {
		t.Errorf("backends -json on the pair: exit %d, %s", code, out)
	}
}

// TestCLIPairDrainWait: drain -wait waits until the backend is idle on every lb, here on the
// second lb, which has a request in flight, and still on the reachable lbs when one is down.
func TestCLIPairDrainWait(t *testing.T) {
	started := make(chan string, 2)
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	slow := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			started <- name
			<-release
		}
	}
	b1, b2 := newBackend(t, "app-1", slow("app-1")), newBackend(t, "app-2", slow("app-2"))
	t.Cleanup(releaseAll)
	p := startPair(t, b1, b2)
	p.b.getInBackground("/slow")
	busy := <-started // the backend lb B sent it to

	var stdout, stderr lbtest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		env := p.env(p.urlA, p.dead, p.urlB)
		err := run(context.Background(), []string{"lb", "drain", "-wait", "-timeout", "20s", busy},
			func(k string) string { return env[k] }, &stdout, &stderr)
		done <- exitCode(err, &stderr)
	}()
	lbtest.WaitFor(t, 10*time.Second, "lb A to report "+busy+" idle", func() bool {
		return strings.Contains(stdout.String(), p.urlA+": "+busy+" is idle")
	})
	select {
	case code := <-done:
		t.Fatalf("drain -wait returned (exit %d) with a request in flight on lb B:\n%s%s", code, stdout.String(), stderr.String())
	default:
	}
	releaseAll()
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(stdout.String(), p.urlB+": "+busy+" is idle") ||
			!strings.Contains(stderr.String(), "lb "+p.dead+": drain "+busy+": FAILED: unreachable") {
			t.Errorf("drain -wait: exit %d\nstdout:\n%sstderr:\n%s", code, stdout.String(), stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("drain -wait did not return after the request finished")
	}
}

func TestLBAdminEnv(t *testing.T) {
	tokenFile := writeFile(t, t.TempDir(), "token", testToken)
	tests := []struct {
		name, value, want string
	}{
		{"empty item", "http://127.0.0.1:1,,http://127.0.0.1:2", "item 2 of 3 is empty"},
		{"trailing comma", "http://127.0.0.1:1,", "item 2 of 2 is empty"},
		{"only a comma", ",", "item 1 of 2 is empty"},
		{"separated by spaces", "http://127.0.0.1:1 http://127.0.0.1:2", "want http://HOST:PORT"},
		{"no scheme", "127.0.0.1:9000", "want http://HOST:PORT"},
		{"a path", "http://127.0.0.1:9000/api/backends", "no path"},
		{"userinfo", "http://u:p@127.0.0.1:9000", "no userinfo"},
		{"no host", "http://:9000", "no host"},
		{"the same lb twice", "http://127.0.0.1:1, http://127.0.0.1:1/", "given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := runCLI(t, map[string]string{"LB_ADMIN": tt.value, "LB_ADMIN_TOKEN_FILE": tokenFile}, "drain", "app-1")
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("LB_ADMIN=%q: exit %d %q, want 2 and %q", tt.value, code, errOut, tt.want)
			}
		})
	}
	got, err := parseAdminEnv(" http://10.0.0.1:9000/ , https://lb-b.internal:9000 ")
	if want := []string{"http://10.0.0.1:9000", "https://lb-b.internal:9000"}; err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseAdminEnv: %q, %v; want %q", got, err, want)
	}
}

// versionedBackend is a real backend whose /healthz reports the version in dir/NAME.version.
func versionedBackend(t *testing.T, dir, name string) *testBackend {
	t.Helper()
	file := filepath.Join(dir, name+".version")
	writeFile(t, dir, name+".version", "v1")
	b := &testBackend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := os.ReadFile(file)
		if err != nil || len(v) == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"status": "ok", "version": string(v), "instance": name})
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// TestRolloutPair runs lb rollout against two real lbs: every backend ends active on the
// new version on both. With an unreachable lb named, it stops before it changes anything.
func TestRolloutPair(t *testing.T) {
	dir := t.TempDir()
	p := startPair(t, versionedBackend(t, dir, "app-1"), versionedBackend(t, dir, "app-2"))

	var stdout, stderr bytes.Buffer
	env := p.env(p.urlA, p.dead, p.urlB)
	err := run(context.Background(), []string{"lb", "rollout", "-rise", "2", "-timeout", "20s", "--", "/bin/sh", "-c", rolloutScript, "sh", dir, "v2"},
		func(k string) string { return env[k] }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), p.dead) {
		t.Errorf("rollout with a dead lb: %v, want an error naming it", err)
	}
	for _, l := range []*runningLB{p.a, p.b} {
		for _, n := range p.backendsNames {
			if got := state(t, l, n); got != admin.StateActive {
				t.Errorf("%s after the refused rollout: %s, want untouched", n, got)
			}
		}
	}

	stdout.Reset()
	stderr.Reset()
	env = p.env(p.urlA, p.urlB)
	err = run(context.Background(), []string{"lb", "rollout", "-expect-version", "v2", "-rise", "2", "-timeout", "20s", "--", "/bin/sh", "-c", rolloutScript, "sh", dir, "v2"},
		func(k string) string { return env[k] }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("rollout on the pair: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	for _, l := range []*runningLB{p.a, p.b} {
		list, err := l.client.Backends(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range list {
			if b.State != admin.StateActive || b.Version != "v2" || !b.Healthy {
				t.Errorf("%s on %s: %s, version %s, healthy %t; want active v2 healthy", b.Name, l.client.BaseURL, b.State, b.Version, b.Healthy)
			}
		}
	}
	if !strings.Contains(stdout.String(), "rollout done: 2 of 2 backend(s)") || !strings.Contains(stdout.String(), "on 2 lb(s)") {
		t.Errorf("rollout output:\n%s", stdout.String())
	}
}
