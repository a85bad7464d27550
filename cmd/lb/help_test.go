package main

import (
	"strings"
	"testing"
)

// TestHelp: `lb help`, `lb -h` and `lb COMMAND -h` print their usage on stdout and exit
// 0, so that `lb drain -h | less` works; a bad flag prints the error and the usage on
// stderr and exits 2.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		out, errOut, code := runCLI(t, nil, args...)
		if code != 0 || !strings.HasPrefix(out, "Usage: lb COMMAND") || errOut != "" {
			t.Errorf("lb %s: exit %d, stdout %q, stderr %q", args[0], code, out, errOut)
		}
	}
	for _, cmd := range []string{"serve", "validate", "backends", "drain", "enable", "add", "remove", "rollout", "ready", "reload"} {
		for _, h := range []string{"-h", "-help", "--help"} {
			out, errOut, code := runCLI(t, nil, cmd, h)
			if code != 0 || !strings.HasPrefix(out, "Usage: lb "+cmd+" ") || !strings.Contains(out, "Flags:") || errOut != "" {
				t.Errorf("lb %s %s: exit %d, stdout %q, stderr %q; want the usage on stdout", cmd, h, code, out, errOut)
			}
		}
		out, errOut, code := runCLI(t, nil, cmd, "-no-such-flag")
		if code != 2 || out != "" || !strings.Contains(errOut, "flag provided but not defined: -no-such-flag") ||
			!strings.Contains(errOut, "Usage: lb "+cmd+" ") {
			t.Errorf("lb %s -no-such-flag: exit %d, stdout %q, stderr %q; want 2, the error and the usage on stderr", cmd, code, out, errOut)
		}
	}
}
