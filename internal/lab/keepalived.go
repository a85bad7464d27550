package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
)

// StartKeepalived starts keepalived on the host as a VM would run it: in the foreground,
// VRRP only, logging to its log file (detailed), its pid files in the host's RunDir, with
// configuration file conf and env added to its environment (its scripts inherit it).
//
// It starts keepalived in this process's network namespace and has it enter the host's
// itself (--namespace, ProcSpec.EntersItself): keepalived's process tracking
// (vrrp_track_process) listens to the kernel's process events, which reach only the
// initial network namespace, and with --namespace keepalived opens that channel before it
// moves. Started inside the host's namespace instead, it logs "Failed to set/clear process
// event listen" and counts every tracked process as gone.
//
// With enable_script_security, keepalived runs only scripts that no one but root can
// change, up the whole path: anything under the lab's directory qualifies (root-owned,
// 0755, in the sticky /tmp), the go test binary's own build directory does not (0700).
func (h *Host) StartKeepalived(ctx context.Context, conf string, env []string) (*Proc, error) {
	run := h.RunDir()
	return h.Start(ctx, ProcSpec{Name: "keepalived", Env: env, EntersItself: true, Argv: []string{
		"keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
		"--namespace", h.Namespace(), "-f", conf,
		"-p", filepath.Join(run, "keepalived.pid"), "-r", filepath.Join(run, "vrrp.pid"),
	}})
}

// SetDefinitions returns keepalived configuration conf with the values of its parameter
// definitions ("$NAME=value" lines) replaced by vars, e.g. to run deploy/keepalived's
// example with lab addresses. A name conf does not define is an error.
func SetDefinitions(conf string, vars map[string]string) (string, error) {
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		re := regexp.MustCompile(`(?m)^\$` + regexp.QuoteMeta(name) + `=.*$`)
		if !re.MatchString(conf) {
			return "", fmt.Errorf("keepalived configuration defines no $%s", name)
		}
		conf = re.ReplaceAllLiteralString(conf, "$"+name+"="+vars[name])
	}
	return conf, nil
}
