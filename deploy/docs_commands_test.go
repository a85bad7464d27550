package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// codeText returns what OPERATIONS.md shows as code: the fenced blocks' lines and every
// inline `...` span, one per element.
func codeText(doc string) []string {
	var out []string
	inBlock := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock {
			out = append(out, line)
			continue
		}
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(line, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// lbFlags builds lb and returns its subcommands and, for each, the flags `lb SUB -h` lists.
func lbFlags(t *testing.T) map[string]map[string]bool {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lb")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/lb").CombinedOutput(); err != nil {
		t.Fatalf("go build lb: %v\n%s", err, out)
	}
	help, err := exec.Command(bin, "help").CombinedOutput()
	if err != nil {
		t.Fatalf("lb help: %v\n%s", err, help)
	}
	subs := map[string]map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z]+) `).FindAllStringSubmatch(string(help), -1) {
		out, _ := exec.Command(bin, m[1], "-h").CombinedOutput()
		flags := map[string]bool{"h": true}
		for _, f := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
			flags[f[1]] = true
		}
		subs[m[1]] = flags
	}
	if len(subs) < 10 || len(subs["rollout"]) < 5 {
		t.Fatalf("lb help listed %d commands (rollout: %d flags): has its format changed?\n%s", len(subs), len(subs["rollout"]), help)
	}
	return subs
}

// lbInvocation finds "lb SUB rest" run as a command: at the start of the text, or after
// sudo, a pipe, && or ;, or as a path ending in /lb.
var lbInvocation = regexp.MustCompile(`(?:^|sudo |[|;&] *|\$ |/)lb ([a-z]+)(\s[^|;&)]*|$)`)

// TestOperationsLBCommands: every `lb COMMAND -flag` that OPERATIONS.md shows as code names
// a command lb has, and flags that command takes, so the guide cannot drift from the CLI.
func TestOperationsLBCommands(t *testing.T) {
	subs := lbFlags(t)
	checked := 0
	for _, code := range codeText(readFile(t, "OPERATIONS.md")) {
		for _, m := range lbInvocation.FindAllStringSubmatch(strings.TrimSpace(code), -1) {
			sub, rest := m[1], m[2]
			flags, ok := subs[sub]
			if !ok {
				if strings.HasPrefix(m[0], "lb ") || strings.Contains(m[0], "/lb ") || strings.HasPrefix(m[0], "sudo ") {
					t.Errorf("OPERATIONS.md runs `lb %s`, which lb does not have: %q", sub, code)
				}
				continue
			}
			checked++
			rest, _, _ = strings.Cut(rest, " -- ") // CMD's own arguments
			for _, tok := range strings.Fields(rest) {
				if !strings.HasPrefix(tok, "-") || tok == "--" {
					continue
				}
				name, _, _ := strings.Cut(strings.TrimLeft(tok, "-"), "=")
				if !flags[name] {
					t.Errorf("OPERATIONS.md gives `lb %s` the flag -%s, which it does not take: %q", sub, name, code)
				}
			}
		}
	}
	if checked < 30 {
		t.Errorf("checked %d lb commands in OPERATIONS.md, want at least 30: has the guide's style changed?", checked)
	}
}

// TestOperationsPathsExist: every deploy/ file the guide names exists.
func TestOperationsPathsExist(t *testing.T) {
	doc := readFile(t, "OPERATIONS.md")
	seen := 0
	for _, m := range regexp.MustCompile("(?:^|[^/A-Za-z0-9_.~-])(deploy/[A-Za-z0-9_./@-]*[A-Za-z0-9_])").FindAllStringSubmatch(doc, -1) {
		m := m[1]
		seen++
		if _, err := os.Stat(filepath.Join("..", m)); err != nil {
			t.Errorf("OPERATIONS.md names %s, which does not exist", m)
		}
	}
	if seen < 10 {
		t.Errorf("found %d deploy/ paths in OPERATIONS.md, want at least 10", seen)
	}
}

// TestOperationsInstallSettings: every INSTALL_* variable the guide names is one install.sh
// reads.
func TestOperationsInstallSettings(t *testing.T) {
	script := readFile(t, "install.sh")
	for _, v := range regexp.MustCompile(`INSTALL_[A-Z_]+`).FindAllString(readFile(t, "OPERATIONS.md"), -1) {
		if !strings.Contains(script, "${"+v) {
			t.Errorf("OPERATIONS.md names %s, which install.sh does not read", v)
		}
	}
}

// TestOperationsSudoersAndPackages: the sudoers line the guide gives allows exactly what
// install.sh runs under sudo (`sudo -n bash -s`, nothing else), and the guide's base
// packages bring every tool install.sh's preflight wants that a minimal Debian lacks.
func TestOperationsSudoersAndPackages(t *testing.T) {
	doc, script := readFile(t, "OPERATIONS.md"), readFile(t, "install.sh")
	if !strings.Contains(doc, "deploy ALL=(root) NOPASSWD: /usr/bin/bash -s'") {
		t.Error("OPERATIONS.md lacks the sudoers line `deploy ALL=(root) NOPASSWD: /usr/bin/bash -s`")
	}
	// Every use of the privilege prefix in install.sh runs `-n bash -s`.
	uses := regexp.MustCompile(`\$\{?sudo[}:+$a-z ]*`).FindAllStringIndex(script, -1)
	for _, u := range uses {
		line := script[u[0]:]
		line, _, _ = strings.Cut(line, "\n")
		if strings.Contains(line, "-n") && !strings.Contains(line, "-n bash -s") && !strings.Contains(line, "-n }bash -s") {
			t.Errorf("install.sh runs something other than `bash -s` under sudo: %q", line)
		}
	}
	if !strings.Contains(script, `"${sudo:+$sudo -n }bash -s"`) || !strings.Contains(script, `"$sudo" -n bash -s`) {
		t.Error("install.sh no longer runs its privileged part as `sudo -n bash -s`: update the sudoers line in OPERATIONS.md")
	}

	m := regexp.MustCompile(`for tool in ([a-z $]+); do`).FindStringSubmatch(script)
	if m == nil {
		t.Fatal("install.sh's preflight tool list not found")
	}
	apt := regexp.MustCompile(`(?m)^sudo apt-get update && sudo apt-get install -y (.*)$`).FindStringSubmatch(doc)
	if apt == nil {
		t.Fatal("OPERATIONS.md's base package line (every VM) not found")
	}
	// Essential in Debian (or systemd itself): present on every minimal install.
	essential := map[string]bool{"bash": true, "install": true, "mktemp": true, "cmp": true, "ln": true,
		"mv": true, "rm": true, "systemctl": true}
	pkgs := " " + apt[1] + " "
	for _, tool := range strings.Fields(strings.ReplaceAll(m[1], "$sudo", "sudo")) {
		if !essential[tool] && !strings.Contains(pkgs, " "+tool+" ") {
			t.Errorf("install.sh needs %s on the app VMs, but the guide's base packages (%s) do not install it", tool, apt[1])
		}
	}
}

// TestOperationsWatchdog: the guide's watchdog figures are the units'.
func TestOperationsWatchdog(t *testing.T) {
	doc := readFile(t, "OPERATIONS.md")
	for _, tc := range []struct{ unit, name string }{{"systemd/lb.service", "lb"}, {"systemd/app.service", "app"}} {
		wd := parseUnit(t, tc.unit).get("Service", "WatchdogSec")
		if !strings.Contains(doc, tc.name+" "+wd) {
			t.Errorf("OPERATIONS.md does not give %s's WatchdogSec as %q (\"%s %s\")", tc.name, wd, tc.name, wd)
		}
	}
	for _, want := range []string{"### What restarts what", "GOTRACEBACK=crash", "LimitCORE=0"} {
		if !strings.Contains(doc, want) {
			t.Errorf("OPERATIONS.md lacks %q", want)
		}
	}
}
