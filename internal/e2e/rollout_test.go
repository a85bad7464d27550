package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"outrigger/internal/fleet"
)

// lbCLI runs the lb binary as the operator's CLI and returns its combined output.
func lbCLI(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.lb, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestRollout is DESIGN's acceptance bar 3: under load, `lb rollout` replaces every
// app server (v1) by v2 with zero failed requests.
func TestRollout(t *testing.T) {
	f := startFleet(t, fleet.Options{Apps: 3}, false)
	ctx := t.Context()
	users := makeUsers(t, f, "rollout", 4, 100<<10)

	lr := fleet.StartLoad(ctx, userLoad(users, 3*time.Minute))
	if !lr.WaitRequests(ctx, 50) {
		t.Fatalf("load before the rollout: %v", lr.Stop())
	}
	start := time.Now()
	out, err := lbCLI(ctx, 2*time.Minute, "rollout", "-admin", f.AdminURL(), "-token-file", f.TokenFile(),
		"-expect-version", "v2", "--", bin.self, restartArg, f.ControlSocket(), "v2")
	took := time.Since(start)
	lr.WaitRequests(ctx, 50) // and some requests after it
	res := lr.Stop()
	t.Logf("lb rollout took %v; its output:\n%s", took.Round(time.Millisecond), out)
	report(t, "rollout v1 -> v2", res)
	if err != nil {
		t.Errorf("lb rollout: got %v, want exit status 0", err)
	}
	if res.Failures != 0 {
		t.Errorf("rollout: got %d failed requests, want 0", res.Failures)
	}
	if res.Broken != 0 {
		t.Errorf("rollout: got %d responses broken mid-body, want 0 (every backend was drained before its restart)", res.Broken)
	}

	bs, err := f.Admin().Backends(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 {
		t.Errorf("backends after the rollout: got %d, want 3", len(bs))
	}
	for _, b := range bs {
		if b.Version != "v2" || b.State != "active" || !b.Healthy {
			t.Errorf("backend %s after the rollout: version %q state %q healthy %v, want v2 active healthy", b.Name, b.Version, b.State, b.Healthy)
		}
	}
	for i, p := range f.Apps() {
		if p.Binary() != bin.appV2 || !p.Running() {
			t.Errorf("%s: runs %s (running %v), want %s", f.AppNames()[i], p.Binary(), p.Running(), bin.appV2)
		}
	}
	// Every instance answers users with v2.
	seen := map[string]bool{}
	waitFor(t, 10*time.Second, "all three instances answering v2 through lb", func() bool {
		inst, version, err := users[0].me(ctx)
		if err != nil {
			t.Fatalf("after the rollout: %v", err)
		}
		if version != "v2" {
			t.Fatalf("after the rollout, %s answered version %q, want v2", inst, version)
		}
		seen[inst] = true
		return len(seen) == 3
	})
}

// TestRolloutFailingCommand: a rollout whose CMD fails stops, exits non-zero with the
// command's status and output, and leaves that backend drained and the others serving.
func TestRolloutFailingCommand(t *testing.T) {
	f := startFleet(t, fleet.Options{Apps: 3}, false)
	ctx := t.Context()
	users := makeUsers(t, f, "failing", 3, 32<<10)

	lr := fleet.StartLoad(ctx, userLoad(users, 2*time.Minute))
	if !lr.WaitRequests(ctx, 50) {
		t.Fatalf("load before the rollout: %v", lr.Stop())
	}
	out, err := lbCLI(ctx, time.Minute, "rollout", "-admin", f.AdminURL(), "-token-file", f.TokenFile(),
		"-expect-version", "v2", "--", "/bin/sh", "-c", `echo "installing on $LB_BACKEND_NAME"; echo "disk full" >&2; exit 3`)
	lr.WaitRequests(ctx, 50)
	res := lr.Stop()
	t.Logf("lb rollout output:\n%s", out)
	report(t, "failing rollout", res)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("lb rollout: got %v, want a non-zero exit status", err)
	}
	for _, want := range []string{"3", "disk full"} {
		if !strings.Contains(out, want) {
			t.Errorf("rollout output lacks %q (the command's exit status and last lines)", want)
		}
	}
	if res.Failures != 0 {
		t.Errorf("failing rollout: got %d failed requests, want 0", res.Failures)
	}

	bs, err := f.Admin().Backends(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var drained []string
	for _, b := range bs {
		switch {
		case b.State == "draining":
			drained = append(drained, b.Name)
		case b.State != "active" || !b.Healthy || b.Version != "v1":
			t.Errorf("backend %s: state %q healthy %v version %q, want active healthy v1", b.Name, b.State, b.Healthy, b.Version)
		}
	}
	if len(drained) != 1 {
		t.Fatalf("drained backends after the failed rollout: got %v, want exactly one", drained)
	}
	if !strings.Contains(out, drained[0]) {
		t.Errorf("rollout output does not name the drained backend %s", drained[0])
	}
	// The others serve; the drained one gets nothing.
	for range 12 {
		inst, _, err := users[0].me(ctx)
		if err != nil {
			t.Fatalf("after the failed rollout: %v", err)
		}
		if inst == drained[0] {
			t.Fatalf("after the failed rollout, the drained %s answered a request", inst)
		}
	}
}
