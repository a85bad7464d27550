package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMenu runs the lab as `make lab` does and drives its menu through stdin: the URL it
// prints answers from this machine's own namespace (through the link Attach made), and
// keeps answering while an app host is crashed; crash, boot, blackhole, heal, switchover
// and rollout each answer ok and show in the status line; an unknown command is an error;
// quit removes the lab, the link from the machine included. About 90 s.
func TestMenu(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("cmd/lab needs root: it builds network namespaces")
	}
	dir := t.TempDir()
	o := options{lb: filepath.Join(dir, "lb"), app: filepath.Join(dir, "app"), appNext: filepath.Join(dir, "app-v2"),
		apps: 3, statusEvery: 500 * time.Millisecond}
	for _, b := range [][3]string{{o.lb, "outrigger/cmd/lb", "v1"}, {o.app, "outrigger/cmd/app", "v1"}, {o.appNext, "outrigger/cmd/app", "v2"}} {
		if out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+b[2], "-o", b[0], b[1]).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	stdin, toLab := io.Pipe()
	fromLab, stdout := io.Pipe()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, stdin, stdout, o)
		stdout.Close()
	}()
	lines := make(chan string, 1000)
	var transcript strings.Builder
	go func() {
		sc := bufio.NewScanner(fromLab)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	defer func() {
		if t.Failed() {
			t.Logf("transcript:\n%s", transcript.String())
		}
	}()
	// expect reads lines until one contains want, and returns it.
	expect := func(want string, limit time.Duration) string {
		t.Helper()
		deadline := time.After(limit)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the lab stopped (%v) before printing %q", <-done, want)
				}
				transcript.WriteString(l + "\n")
				if strings.HasPrefix(l, "error:") && !strings.Contains(want, "error:") {
					t.Fatalf("%s (waiting for %q)", l, want)
				}
				if strings.Contains(l, want) {
					return l
				}
			case <-deadline:
				t.Fatalf("no %q within %v", want, limit)
			}
		}
	}
	send := func(cmd string) { fmt.Fprintln(toLab, cmd) }

	url := strings.TrimSpace(strings.TrimPrefix(expect("  URL:", 3*time.Minute), "  URL:"))
	curl := expect("  curl:", time.Second)
	cert := strings.Fields(curl)[3]
	web := webClient(t, cert)
	get := func(what string) {
		t.Helper()
		resp, err := web.Get(url + "healthz")
		if err != nil {
			t.Fatalf("%s: GET %shealthz from this machine: %v", what, url, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: GET %shealthz: %s", what, url, resp.Status)
		}
	}
	get("at the start")
	expect("all hosts up", time.Minute)

	send("crash app-1")
	expect("ok: crash app-1", time.Minute)
	expect("app-1 crashed", 30*time.Second)
	get("app-1 crashed")
	send("boot app-1")
	expect("ok: boot app-1", time.Minute)
	send("blackhole app-2")
	expect("ok: blackhole app-2", time.Minute)
	expect("app-2 blackholed", 30*time.Second)
	send("heal app-2")
	expect("ok: heal app-2", time.Minute)
	expect("all hosts up", 30*time.Second)
	send("switchover")
	expect("ok: switchover", 3*time.Minute)
	send("rollout")
	expect("app-3 now runs "+o.appNext, 3*time.Minute)
	expect("ok: rollout", time.Second)
	get("after the rollout")
	send("bogus")
	expect("error: bogus", 10*time.Second)
	send("quit")
	expect("stopped.", 2*time.Minute)
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if out, err := exec.Command("ip", "-o", "link").CombinedOutput(); err != nil || strings.Contains(string(out), fmt.Sprintf("ol%dh0", os.Getpid())) {
		t.Errorf("the link from the machine survives quit (%v):\n%s", err, out)
	}
	if out, _ := exec.Command("ip", "netns", "list").CombinedOutput(); strings.Contains(string(out), fmt.Sprintf("olab-%d-", os.Getpid())) {
		t.Errorf("namespaces of the lab survive quit:\n%s", out)
	}
}

// webClient is an HTTP client of this machine's namespace trusting the certificate in file.
func webClient(t *testing.T, file string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", file)
	}
	// per_try_timeout (10 s) + dial_timeout + 1 s: a request lb sent to the crashed host
	// on a kept-alive connection, before its checks marked it down, is retried after that.
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// TestAbsBinaries: `make lab` names the binaries relative to the repository, and every
// process starts in its host's own directory, so the paths must be made absolute first
// (a relative one failed as "fork/exec bin/app: no such file or directory").
func TestAbsBinaries(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"lb", "app", "app-next"} {
		if err := os.WriteFile(filepath.Join(dir, "bin", name), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	o := options{lb: "bin/lb", app: "bin/app", appNext: "./bin/app-next"}
	if err := o.absBinaries(); err != nil {
		t.Fatal(err)
	}
	for _, got := range []string{o.lb, o.app, o.appNext} {
		if !filepath.IsAbs(got) || !strings.HasPrefix(got, dir) {
			t.Errorf("binary path %q, want an absolute path under %s", got, dir)
		}
	}
	o = options{lb: "bin/lb", app: "bin/missing", appNext: "bin/app-next"}
	if err := o.absBinaries(); err == nil || !strings.Contains(err.Error(), "bin/missing") || !strings.Contains(err.Error(), "make lab") {
		t.Errorf("missing binary: %v, want an error naming it and make lab", err)
	}
}
