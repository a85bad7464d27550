package fleet

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestLineWriterAndLog(t *testing.T) {
	l, err := newLog("app-1", filepath.Join(t.TempDir(), "app-1.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	w := &lineWriter{fn: l.add}
	_, _ = w.Write([]byte(`{"msg":"request","status":200,"request_id":"a"}` + "\nplain te"))
	_, _ = w.Write([]byte("xt\r\n{\"msg\":\"listening\"}"))
	w.flush()
	if got, want := l.Tail(10), []string{`{"msg":"request","status":200,"request_id":"a"}`, "plain text", `{"msg":"listening"}`}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Tail: got %q, want %q", got, want)
	}
	if got := l.Tail(1); len(got) != 1 || got[0] != `{"msg":"listening"}` {
		t.Errorf("Tail(1): got %q", got)
	}
	lines, err := l.Lines()
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 {
		t.Fatalf("Lines: got %d, want 3", len(lines))
	}
	tests := []struct {
		line       int
		key, want  string
		wantFields bool
	}{
		{0, "status", "200", true},
		{0, "request_id", "a", true},
		{0, "absent", "", true},
		{1, "msg", "", false},
		{2, "msg", "listening", true},
	}
	for _, tc := range tests {
		ln := lines[tc.line]
		if got := ln.Str(tc.key); got != tc.want {
			t.Errorf("line %d Str(%q): got %q, want %q", tc.line, tc.key, got, tc.want)
		}
		if got := ln.Fields != nil; got != tc.wantFields {
			t.Errorf("line %d parsed: got %v, want %v", tc.line, got, tc.wantFields)
		}
		if ln.Proc != "app-1" {
			t.Errorf("line %d Proc: got %q", tc.line, ln.Proc)
		}
	}
}

func TestLogRingKeepsTheLatest(t *testing.T) {
	l, err := newLog("lb", filepath.Join(t.TempDir(), "lb.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	for i := range ringLines + 5 {
		l.add([]byte(strings.Repeat("x", i%7)))
	}
	l.Note("end")
	got := l.Tail(-1)
	if len(got) != ringLines || got[len(got)-1] != "fleet: end" {
		t.Errorf("Tail(-1): got %d lines ending %q, want %d ending %q", len(got), got[len(got)-1], ringLines, "fleet: end")
	}
	all, err := l.Lines()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != ringLines+6 {
		t.Errorf("file lines: got %d, want %d", len(all), ringLines+6)
	}
}

func TestSelfSignedCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool, err := selfSigned(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Fatalf("load key pair: %v", err)
	}
	st, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key mode: got %v, want 0600", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(certFile)
	blk, _ := pem.Decode(raw)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm: got %v, want ECDSA", cert.PublicKeyAlgorithm)
	}
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
}

func TestLBConfigYAML(t *testing.T) {
	o := LBOptions{PerTryTimeout: 1500 * time.Millisecond}
	o.defaults()
	b, err := lbConfigYAML(o, "/c.pem", "/k.pem", "/tok", "/state.json", []lbBackend{{"app-1", "http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	get := func(path ...string) any {
		var v any = m
		for _, p := range path {
			mm, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = mm[p]
		}
		return v
	}
	tests := []struct {
		path []string
		want any
	}{
		{[]string{"listen"}, "127.0.0.1:0"},
		{[]string{"tls", "cert_file"}, "/c.pem"},
		{[]string{"tls", "key_file"}, "/k.pem"},
		{[]string{"admin", "listen"}, "127.0.0.1:0"},
		{[]string{"admin", "token_file"}, "/tok"},
		{[]string{"state_file"}, "/state.json"},
		{[]string{"health_check", "interval"}, "500ms"},
		{[]string{"health_check", "rise"}, 2},
		{[]string{"proxy", "per_try_timeout"}, "1.5s"},
		{[]string{"proxy", "max_retries"}, nil},
		{[]string{"drain_timeout"}, "10s"},
	}
	for _, tc := range tests {
		if got := get(tc.path...); got != tc.want {
			t.Errorf("%s: got %v, want %v", strings.Join(tc.path, "."), got, tc.want)
		}
	}
	bs, _ := get("backends").([]any)
	if len(bs) != 1 {
		t.Fatalf("backends: got %v", get("backends"))
	}
	if b0 := bs[0].(map[string]any); b0["name"] != "app-1" || b0["url"] != "http://127.0.0.1:1" {
		t.Errorf("backend: got %v", b0)
	}
}
