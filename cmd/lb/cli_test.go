package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"outrigger/internal/admin"
	"outrigger/internal/lbtest"
)

// runCLI runs lb with args and env, and returns stdout, stderr and the exit status.
func runCLI(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr lbtest.SyncBuffer
	err := run(context.Background(), append([]string{"lb"}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
	code := exitCode(err, &stderr)
	return stdout.String(), stderr.String(), code
}

func TestCLIAgainstServe(t *testing.T) {
	b1 := newBackend(t, "app-1", nil)
	b2 := newBackend(t, "app-2", nil)
	l := startLB(t, lbConfig{backends: []*testBackend{b1, b2}})
	l.waitHealthy("app-1", "app-2")
	adminURL := "http://" + l.addrs["admin"]
	tokenFile := filepath.Join(dirOf(l.cfgPath), "token")
	flags := []string{"-admin", adminURL, "-token-file", tokenFile}
	env := map[string]string{"LB_ADMIN": adminURL, "LB_ADMIN_TOKEN_FILE": tokenFile}

	out, errOut, code := runCLI(t, nil, append([]string{"backends"}, flags...)...)
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "app-2") || !strings.Contains(out, "active") {
		t.Fatalf("backends: exit %d\n%s%s", code, out, errOut)
	}

	out, _, code = runCLI(t, env, "backends", "-json")
	var list []admin.Backend
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || !list[0].Healthy {
		t.Fatalf("backends -json (env): exit %d, %q", code, out)
	}

	// drain -wait (several lbs: TestCLIPair).
	out, errOut, code = runCLI(t, nil, "drain", "-admin", adminURL, "-token-file", tokenFile, "-wait", "app-2")
	if code != 0 || strings.Count(out, "app-2 is draining") != 1 || !strings.Contains(out, "idle") {
		t.Fatalf("drain -wait: exit %d\n%s%s", code, out, errOut)
	}
	if b, _ := l.client.Backend(context.Background(), "app-2"); b.State != "draining" {
		t.Errorf("after lb drain: state %q", b.State)
	}
	out, _, code = runCLI(t, env, "enable", "app-2")
	if code != 0 || !strings.Contains(out, "app-2 is active") {
		t.Errorf("enable: exit %d %q", code, out)
	}
	out, errOut, code = runCLI(t, env, "add", "app-3", b2.srv.URL)
	if code != 0 || !strings.Contains(out, "added app-3") {
		t.Errorf("add: exit %d %q %q", code, out, errOut)
	}
	_, errOut, code = runCLI(t, env, "add", "app-3", b2.srv.URL)
	if code != 1 || !strings.Contains(errOut, "409") {
		t.Errorf("add twice: exit %d %q, want 1 and the 409", code, errOut)
	}
	out, _, code = runCLI(t, env, "remove", "app-3")
	if code != 0 || !strings.Contains(out, "removed app-3") {
		t.Errorf("remove: exit %d %q", code, out)
	}

	failures := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown backend", env, []string{"drain", "nope"}, 1, "404"},
		{"no admin", nil, []string{"backends", "-token-file", tokenFile}, 2, "LB_ADMIN"},
		{"no token", map[string]string{"LB_ADMIN": adminURL}, []string{"backends"}, 2, "LB_ADMIN_TOKEN_FILE"},
		{"missing name", env, []string{"drain"}, 2, "NAME"},
		{"flag after name", env, []string{"drain", "app-1", "-wait"}, 2, "flags first"},
		{"bad admin URL", env, []string{"backends", "-admin", "127.0.0.1:1"}, 2, "http://"},
		{"the same lb twice", env, []string{"drain", "-admin", adminURL, "-admin", adminURL + "/", "app-2"}, 2, "given twice"},
		{"unknown command", nil, []string{"frobnicate"}, 2, "unknown command"},
		{"no command", nil, []string{}, 2, "no command"},
		{"dead lb", nil, []string{"backends", "-admin", "http://127.0.0.1:1", "-token-file", tokenFile}, 1, "127.0.0.1:1"},
	}
	for _, f := range failures {
		_, errOut, code := runCLI(t, f.env, f.args...)
		if code != f.wantCode || !strings.Contains(errOut, f.wantErr) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d mentioning %q", f.name, code, errOut, f.wantCode, f.wantErr)
		}
	}

	wrong := filepath.Join(t.TempDir(), "wrong")
	writeFile(t, filepath.Dir(wrong), "wrong", "not-the-token-0123456789")
	_, errOut, code = runCLI(t, nil, "backends", "-admin", adminURL, "-token-file", wrong)
	if code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("wrong token: exit %d %q, want 1 and 401", code, errOut)
	}
}

func TestVersionAndValidate(t *testing.T) {
	for _, arg := range []string{"version", "-version"} {
		out, _, code := runCLI(t, nil, arg)
		if code != 0 || out != "lb "+version+"\n" {
			t.Errorf("lb %s: exit %d %q", arg, code, out)
		}
	}
	dir := t.TempDir()
	writeFile(t, dir, "token", testToken)
	good := writeFile(t, dir, "good.yaml", "listen: 127.0.0.1:0\nadmin:\n  token_file: "+filepath.Join(dir, "token")+"\nbackends: []\n")
	out, _, code := runCLI(t, nil, "validate", "-config", good)
	if code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("validate good: exit %d %q", code, out)
	}
	bad := writeFile(t, dir, "bad.yaml", "listen: 127.0.0.1:0\npolicy: fastest\nhealth_check:\n  rise: 0\nadmin:\n  token_file: x\nbackends:\n  - name: App\n    url: ftp://x\n")
	out, _, code = runCLI(t, nil, "validate", "-config", bad)
	if code != 2 {
		t.Errorf("validate bad: exit %d, want 2", code)
	}
	// One line per problem, each with the file and the key path.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	wantPaths := []string{"policy", "health_check.rise", "backends[0].name", "backends[0].url"}
	if len(lines) != len(wantPaths) {
		t.Fatalf("validate bad: got %d lines, want %d:\n%s", len(lines), len(wantPaths), out)
	}
	for i, want := range wantPaths {
		if prefix := bad + ": " + want + ": "; !strings.HasPrefix(lines[i], prefix) {
			t.Errorf("line %d: got %q, want prefix %q", i, lines[i], prefix)
		}
	}
	// The token file is checked too: serve and a reload would refuse it.
	openToken := writeFile(t, dir, "open-token", testToken)
	if err := os.Chmod(openToken, 0o644); err != nil {
		t.Fatal(err)
	}
	loose := writeFile(t, dir, "loose.yaml", "listen: 127.0.0.1:0\nadmin:\n  token_file: "+openToken+"\n")
	out, _, code = runCLI(t, nil, "validate", "-config", loose)
	if code != 2 || !strings.Contains(out, loose+": admin.token_file: ") || !strings.Contains(out, "chmod 600") {
		t.Errorf("validate with a group/other-readable token file: exit %d %q, want 2 and admin.token_file", code, out)
	}
	// Before the first start on a VM, admin.token_file is lb.service's credential, which does
	// not exist yet: -token-file checks the file it comes from instead.
	credential := writeFile(t, dir, "credential.yaml", "listen: 127.0.0.1:0\nadmin:\n  token_file: /run/credentials/lb.service/admin-token\n")
	out, _, code = runCLI(t, nil, "validate", "-config", credential)
	if code != 2 || !strings.Contains(out, "admin.token_file: ") || !strings.Contains(out, "no such file") {
		t.Errorf("validate with a credential path: exit %d %q, want 2 and the missing file", code, out)
	}
	out, _, code = runCLI(t, nil, "validate", "-config", credential, "-token-file", filepath.Join(dir, "token"))
	if code != 0 || !strings.Contains(out, "ok (admin token checked in "+filepath.Join(dir, "token")) {
		t.Errorf("validate -token-file: exit %d %q, want ok naming the file checked", code, out)
	}
	// A placeholder token is refused by validate and serve alike (exit 2, naming the key).
	placeholder := writeFile(t, dir, "placeholder-token", "CHANGE-ME-0123456789abcdef\n")
	out, _, code = runCLI(t, nil, "validate", "-config", credential, "-token-file", placeholder)
	if code != 2 || !strings.Contains(out, "admin.token_file: ") || !strings.Contains(out, "placeholder") {
		t.Errorf("validate with a placeholder token: exit %d %q, want 2 naming admin.token_file", code, out)
	}
	withPlaceholder := writeFile(t, dir, "placeholder.yaml", "listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n  token_file: "+placeholder+"\n")
	_, errOut, code := runCLI(t, map[string]string{"LOG_FORMAT": "json"}, "serve", "-config", withPlaceholder)
	if code != 2 || !strings.Contains(errOut, "admin.token_file: ") || !strings.Contains(errOut, "placeholder") {
		t.Errorf("serve with a placeholder token: exit %d %q, want 2 naming admin.token_file", code, errOut)
	}
	_, errOut, code = runCLI(t, map[string]string{"LOG_FORMAT": "json"}, "serve", "-config", bad)
	if code != 2 || !strings.Contains(errOut, "policy") {
		t.Errorf("serve with a bad config: exit %d %q, want 2", code, errOut)
	}
}
