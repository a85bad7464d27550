// Package e2e holds Outrigger's end-to-end tests: the real lb and app binaries, a
// real PostgreSQL, real TLS and real signals, started through internal/fleet.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"testing"

	"outrigger/internal/fleet"
	"outrigger/internal/pgtest"
)

// bin holds the binaries TestMain builds once.
var bin struct {
	lb, lbV2, appV1, appV2 string
	self                   string // this test binary: the CMD of `lb rollout` (restartArg)
}

// restartArg as the first argument makes this test binary restart one app server
// through the fleet's control socket (fleet.RestartCommand) instead of running tests.
const restartArg = "fleet-restart"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == restartArg {
		if err := fleet.RestartCommand(context.Background(), os.Args[2:], os.Getenv, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "restart:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bin.self, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	bin.lb = filepath.Join(dir, "lb")
	bin.lbV2 = filepath.Join(dir, "lb-v2")
	bin.appV1 = filepath.Join(dir, "app-v1")
	bin.appV2 = filepath.Join(dir, "app-v2")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, b := range []struct{ out, pkg, version string }{
		{bin.lb, "outrigger/cmd/lb", "v1"},
		{bin.lbV2, "outrigger/cmd/lb", "v2"},
		{bin.appV1, "outrigger/cmd/app", "v1"},
		{bin.appV2, "outrigger/cmd/app", "v2"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.out, "-ldflags", "-X main.version="+b.version, b.pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build %s: %v\n%s", b.pkg, err, out)
			return 1
		}
	}
	return pgtest.Run(m)
}
