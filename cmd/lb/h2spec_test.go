package main

import (
	"encoding/xml"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// h2specBinary finds h2spec: $H2SPEC, .cache/bin/h2spec of the repository (where `make
// h2spec-tool`, and so make test and CI, install it), or the PATH.
func h2specBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("H2SPEC"); p != "" {
		return p
	}
	if p, err := filepath.Abs("../../.cache/bin/h2spec"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	return installH2Spec(t)
}

// installH2Spec installs h2spec into .cache/bin from the Go module proxy, at the version
// the Makefile's h2spec-tool target names, as `make h2spec-tool` does: so that a bare
// `go test ./...` runs the suite too.
func installH2Spec(t *testing.T) string {
	t.Helper()
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatalf("h2spec not found, and no Makefile to learn its version from: %v", err)
	}
	m := regexp.MustCompile(`(?m)^H2SPEC_VERSION = (\S+)$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("h2spec not found, and the Makefile names no H2SPEC_VERSION")
	}
	gobin, err := filepath.Abs("../../.cache/bin")
	if err != nil {
		t.Fatal(err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goTool, "install", "github.com/summerwind/h2spec/cmd/h2spec@"+string(m[1]))
	cmd.Env = append(os.Environ(), "GOBIN="+gobin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("h2spec not found, and installing it failed (run `make h2spec-tool`, or set H2SPEC): %v\n%s", err, out)
	}
	return filepath.Join(gobin, "h2spec")
}

// h2specRun runs h2spec over TLS against addr and returns the cases that did not pass
// (failed or errored; skipped ones do not count) and how many ran.
func h2specRun(t *testing.T, bin, addr string) (failed []string, total int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "h2spec.xml")
	out, err := exec.Command(bin, "-h", host, "-p", port, "-t", "-k", "-o", "5", "-j", report).CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("h2spec: %v\n%s", err, out)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("h2spec wrote no report (%v):\n%s", err, out)
	}
	var suites struct {
		Suites []struct {
			Cases []struct {
				Package string    `xml:"package,attr"`
				Name    string    `xml:"classname,attr"`
				Error   *struct{} `xml:"error"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &suites); err != nil {
		t.Fatalf("h2spec report: %v", err)
	}
	for _, s := range suites.Suites {
		for _, c := range s.Cases {
			total++
			if c.Error != nil || c.Failure != nil {
				failed = append(failed, c.Package+": "+c.Name)
			}
		}
	}
	if total < 100 {
		t.Fatalf("h2spec ran %d cases, want the whole suite (145):\n%s", total, out)
	}
	return failed, total
}

// TestH2Spec runs h2spec, the HTTP/2 conformance suite, against lb over TLS and against Go's
// own net/http server: lb's own HTTP/2 server must pass every case, and with
// LB_FAST_PATH=off (net/http's HTTP/2 server in front of the forwarding loop) lb must fail no
// case the reference passes.
func TestH2Spec(t *testing.T) {
	bin := h2specBinary(t)
	ref := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	ref.EnableHTTP2 = true
	ref.Config.ErrorLog = log.New(io.Discard, "", 0) // h2spec's protocol errors, on purpose
	ref.StartTLS()
	t.Cleanup(ref.Close)
	refFailed, refTotal := h2specRun(t, bin, ref.Listener.Addr().String())

	for _, fc := range []frontCase{{"fast/tls", true, true}, {"nethttp/tls", false, true}} {
		l := startRecordedLB(t, fc, nil, "limits:\n  read_header_timeout: 30s\n")
		start := time.Now()
		lbFailed, lbTotal := h2specRun(t, bin, l.addr)
		t.Logf("h2spec (%s, %s): lb fails %d of %d cases, Go's net/http server %d of %d", fc.name,
			time.Since(start).Round(time.Second), len(lbFailed), lbTotal, len(refFailed), refTotal)
		for _, c := range lbFailed {
			switch {
			case fc.fast:
				t.Errorf("lb's own HTTP/2 server fails an h2spec case: %s", c)
			case !slices.Contains(refFailed, c):
				t.Errorf("lb (%s) fails an h2spec case Go's net/http server passes: %s", fc.name, c)
			default:
				t.Logf("lb (%s) fails, as net/http does: %s", fc.name, c)
			}
		}
		if t.Failed() {
			t.Logf("lb output:\n%s", strings.TrimSpace(l.out.String()))
		}
	}
}
