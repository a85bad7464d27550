package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// The CLI against an lb that accepts connections and never answers: every admin
// command gives up after -call-timeout, names that lb and what it did, still reaches
// the other lbs named, and exits 1. A rollout stops before its command runs.
func TestCLIAgainstSilentLB(t *testing.T) {
	silent := lbtest.SilentServer(t)
	b1, b2 := newBackend(t, "app-1", nil), newBackend(t, "app-2", nil)
	l := startLB(t, lbConfig{backends: []*testBackend{b1, b2}})
	l.waitHealthy("app-1", "app-2")
	good := "http://" + l.addrs["admin"]
	tokenFile := filepath.Join(dirOf(l.cfgPath), "token")
	flags := []string{"-token-file", tokenFile, "-call-timeout", "500ms"}
	noAnswer := "lb " + silent + ": "
	wantText := "no answer within 500ms: it accepted the connection and then said nothing"

	tests := []struct {
		name string
		args []string
		want string // default wantText
	}{
		{"backends", append([]string{"backends", "-admin", silent}, flags...), ""},
		{"drain on a pair", append([]string{"drain", "-admin", good, "-admin", silent}, append(flags, "app-2")...), ""},
		{"enable", append([]string{"enable", "-admin", silent}, append(flags, "app-2")...), ""},
		// DELETE drains before it answers: the call may take drain_timeout longer.
		{"remove", append([]string{"remove", "-admin", silent, "-drain-timeout", "1s"}, append(flags, "app-9")...),
			"no answer within 1.5s: it accepted the connection"},
		{"reload", append([]string{"reload", "-admin", silent}, flags...), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, errOut, code := runCLI(t, nil, tt.args...)
			took := time.Since(start)
			want := wantText
			if tt.want != "" {
				want = tt.want
			}
			if code != 1 || !strings.Contains(errOut, noAnswer) || !strings.Contains(errOut, want) {
				t.Errorf("exit %d, stderr %q; want 1 naming %s and %q", code, errOut, silent, want)
			}
			if took > 15*time.Second {
				t.Errorf("took %s: the call bound did not hold", took)
			}
		})
	}
	// The lb that answers took the drain.
	if b, err := l.client.Backend(context.Background(), "app-2"); err != nil || b.State != "draining" {
		t.Errorf("app-2 on the answering lb: %+v, %v; want draining", b, err)
	}

	marker := filepath.Join(t.TempDir(), "ran")
	_, errOut, code := runCLI(t, nil, append([]string{"rollout", "-admin", good, "-admin", silent}, append(flags, "--", "touch", marker)...)...)
	t.Logf("lb rollout said:\n%s", errOut)
	if code != 1 || !strings.Contains(errOut, silent) || !strings.Contains(errOut, "no answer within 500ms") {
		t.Errorf("rollout with a silent lb: exit %d, stderr %q; want 1 naming %s", code, errOut, silent)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the rollout ran its command although an lb did not answer")
	}
	// Bad bounds are usage errors.
	if _, errOut, code := runCLI(t, nil, "backends", "-admin", good, "-token-file", tokenFile, "-call-timeout", "0s"); code != 2 ||
		!strings.Contains(errOut, "must be positive") {
		t.Errorf("-call-timeout 0s: exit %d, stderr %q; want 2", code, errOut)
	}
}
