package e2e

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The import rules of DESIGN.md ("Who may import whom"), checked on the real import
// graph: `go list -deps` of every package of the module, test files excluded.

const mod = "outrigger/"

// lbSide and appSide are the two halves of the project; they share only sharedPkgs:
// clientip and logging (DESIGN), and watchdog, systemd's watchdog protocol, which knows
// neither side (each passes its own progress check).
var (
	lbSide     = []string{"internal/balancer", "internal/h1", "internal/frontend", "internal/health", "internal/admin", "internal/lbconfig", "internal/certs", "internal/rollout", "cmd/lb"}
	appSide    = []string{"internal/app", "cmd/app"} // internal/app/... included
	sharedPkgs = []string{"internal/clientip", "internal/logging", "internal/watchdog"}
	testOnly   = []string{"internal/pgtest", "internal/lbtest", "internal/fleet", "internal/e2e", "internal/watchdog/watchdogtest"}
)

// deps maps every package of the module (without the module prefix) to its
// transitive imports within the module.
func deps(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps=false", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, mod+"...").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	m := map[string][]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		var own []string
		for _, d := range f[1:] {
			if strings.HasPrefix(d, mod) {
				own = append(own, strings.TrimPrefix(d, mod))
			}
		}
		m[pkg] = own
	}
	return m
}

// in reports whether pkg is one of roots or below one of them.
func in(pkg string, roots []string) bool {
	for _, r := range roots {
		if pkg == r || strings.HasPrefix(pkg, r+"/") {
			return true
		}
	}
	return false
}

func TestImportRules(t *testing.T) {
	graph := deps(t)
	for _, want := range []string{"internal/balancer", "internal/h1", "internal/health", "internal/admin", "internal/rollout", "cmd/lb", "cmd/app", "internal/app", "internal/clientip", "internal/logging"} {
		if _, ok := graph[want]; !ok {
			t.Errorf("package %s not found: the rules below would be checked on nothing", want)
		}
	}
	tests := []struct {
		name   string
		from   func(pkg string) bool
		banned func(dep string) bool
	}{
		{"balancer does not import health", eq("internal/balancer"), eq("internal/health")},
		{"health does not import balancer", eq("internal/health"), eq("internal/balancer")},
		{"LB side does not import internal/app/...", inF(lbSide), inF(appSide)},
		{"app side does not import LB packages", inF(appSide), inF(lbSide)},
		{"LB side imports only LB packages and the shared ones", inF(lbSide), notIn(lbSide, sharedPkgs)},
		{"app side imports only app packages and the shared ones", inF(appSide), notIn(appSide, sharedPkgs)},
		{"the shared packages import neither side", inF(sharedPkgs), notIn(sharedPkgs)},
		{"programs do not link test helpers", inF([]string{"cmd/lb", "cmd/app"}), inF(testOnly)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checked := 0
			for pkg, ds := range graph {
				if !tc.from(pkg) {
					continue
				}
				checked++
				for _, d := range ds {
					if tc.banned(d) {
						t.Errorf("%s imports %s", pkg, d)
					}
				}
			}
			if checked == 0 {
				t.Errorf("no package matched")
			}
		})
	}
}

func eq(p string) func(string) bool        { return func(s string) bool { return s == p } }
func inF(roots []string) func(string) bool { return func(s string) bool { return in(s, roots) } }
func notIn(sets ...[]string) func(string) bool {
	all := slices.Concat(sets...)
	return func(s string) bool { return !in(s, all) }
}
