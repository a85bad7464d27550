package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestHelp: -h, -help and help print the usage on stdout and exit 0, as
// `lb help` does; a bad flag says so on stderr and exits 2.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help", "help"} {
		var out, errOut bytes.Buffer
		err := run(t.Context(), []string{"app", arg}, envMap(nil), &out, &errOut)
		if err != nil {
			t.Errorf("app %s: %v, want exit 0", arg, err)
		}
		if out.String() != usageText || errOut.Len() != 0 {
			t.Errorf("app %s: stdout %q, stderr %q; want the usage on stdout only", arg, out.String(), errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"app", "-nosuchflag"}, envMap(nil), &out, &errOut)
	if exitCode(err) != 2 || out.Len() != 0 || !strings.Contains(errOut.String(), "nosuchflag") {
		t.Errorf("app -nosuchflag: exit %d, stdout %q, stderr %q", exitCode(err), out.String(), errOut.String())
	}
}

// TestUsageNamesEveryVariable records every variable loadConfig reads and
// checks that the usage lists it, so the two cannot drift apart.
func TestUsageNamesEveryVariable(t *testing.T) {
	env := baseEnv()
	read := map[string]bool{}
	if _, err := loadConfig(func(k string) string { read[k] = true; return env[k] }); err != nil {
		t.Fatal(err)
	}
	if len(read) < 10 {
		t.Fatalf("loadConfig read %d variables, want at least 10: %v", len(read), read)
	}
	for k := range read {
		if !regexp.MustCompile(`(?m)^  ` + k + ` `).MatchString(usageText) {
			t.Errorf("the usage does not list %s", k)
		}
	}
}
