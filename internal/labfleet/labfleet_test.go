package labfleet

import (
	"context"
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

// bins holds the binaries TestMain builds (only when root: the lab tests skip otherwise).
var bins struct{ lb, app string }

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "labfleet-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		bins.lb, bins.app = filepath.Join(dir, "lb"), filepath.Join(dir, "app")
		for _, b := range [][2]string{{bins.lb, "outrigger/cmd/lb"}, {bins.app, "outrigger/cmd/app"}} {
			out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v1", "-o", b[0], b[1]).CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", b[1], err, out)
				return 1
			}
		}
	}
	return m.Run()
}

// TestFleet starts the pair with two apps and checks that the client reaches an app
// through the virtual IP, that exactly one lb holds it, and that both lbs are ready.
func TestFleet(t *testing.T) {
	f := ForTest(t, Options{LB: bins.lb, App: bins.app, Apps: 2})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.URL+"/healthz", nil)
	resp, err := f.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/healthz: %s %s", f.URL, resp.Status, body)
	}
	h, err := f.Holder()
	if err != nil {
		t.Fatal(err)
	}
	for _, lb := range f.LBs {
		if err := lb.Ready(ctx); err != nil {
			t.Error(err)
		}
		v, err := lb.Version(ctx)
		if err != nil || v != "v1" {
			t.Errorf("%s version %q, %v; want v1", lb.Name, v, err)
		}
		bs, err := lb.Admin.Backends(ctx)
		if err != nil || len(bs) != 2 {
			t.Errorf("%s backends %v, %v", lb.Name, bs, err)
		}
	}
	if !strings.Contains(h.NotifyLog(), "MASTER") {
		t.Errorf("holder %s's notify log has no MASTER:\n%s", h.Name, h.NotifyLog())
	}
}
