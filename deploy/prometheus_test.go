package deploy

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// promtool finds Debian's promtool (package prometheus). Without it the test
// skips, except as root, where CI (.ci/run) installs it: there it must run.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if os.Geteuid() == 0 {
		t.Fatalf("promtool not found: as root (CI) it must be installed (apt-get install prometheus; .ci/run does)")
	}
	t.Skip("promtool not found (apt-get install prometheus) and not root: the alert rules are not checked here")
	return ""
}

// TestPrometheusRules checks the alert rules and the scrape configuration
// with promtool, and runs the rules' unit tests (alerts_test.yml): every
// alert fires on the series it is for, with its labels and annotations, and
// not on the ones it is not for.
func TestPrometheusRules(t *testing.T) {
	pt := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		cmd := exec.Command(pt, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestEveryAlertIsTested checks that every alert of alerts.yml appears in
// alerts_test.yml with an expected alert (not only as "no alert"), and is
// explained in OPERATIONS.md.
func TestEveryAlertIsTested(t *testing.T) {
	rules := readFile(t, "prometheus/alerts.yml")
	tests := readFile(t, "prometheus/alerts_test.yml")
	doc := readFile(t, "OPERATIONS.md")
	names := regexp.MustCompile(`(?m)^\s+- alert: (\S+)$`).FindAllStringSubmatch(rules, -1)
	if len(names) < 10 {
		t.Fatalf("found %d alerts in alerts.yml, want at least 10", len(names))
	}
	firing := regexp.MustCompile(`(?m)alertname: (\S+)\n\s+exp_alerts:\n\s+- exp_labels`)
	fired := map[string]bool{}
	for _, m := range firing.FindAllStringSubmatch(tests, -1) {
		fired[m[1]] = true
	}
	// Every runbook link points at a heading of OPERATIONS.md (GitHub's anchors).
	anchors := map[string]bool{}
	for _, h := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(doc, -1) {
		slug := strings.ToLower(strings.ReplaceAll(h[1], " ", "-"))
		slug = regexp.MustCompile(`[^a-z0-9_-]`).ReplaceAllString(slug, "")
		anchors[slug] = true
	}
	for _, m := range regexp.MustCompile(`OPERATIONS\.md#([a-z0-9_-]+)`).FindAllStringSubmatch(rules, -1) {
		if !anchors[m[1]] {
			t.Errorf("alerts.yml links OPERATIONS.md#%s, which is no heading there", m[1])
		}
	}
	for _, m := range names {
		if !fired[m[1]] {
			t.Errorf("alert %s is never expected to fire in alerts_test.yml", m[1])
		}
		if !strings.Contains(doc, "`"+m[1]+"`") {
			t.Errorf("OPERATIONS.md does not explain the alert %s", m[1])
		}
	}
}
