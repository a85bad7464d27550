package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"outrigger/internal/lab"
)

// The rollout over real ssh (issue 14): app VMs are lab hosts, each running Debian's sshd
// (host keys of its own, key authentication only), and `lb rollout -- install.sh` runs on
// the lb host as an operator would. Three things stand in for what a lab host lacks:
//
//   - systemd: there is none inside a network namespace, so each app host's ssh sessions
//     find labSystemctl first on their PATH. It knows one unit, app.service: `cat` says it is
//     installed, `restart` stops the running app (SIGTERM, then waits) and starts
//     INSTALL_ROOT/current/app with the unit's environment, as systemd would.
//   - a file system of its own: each host's sshd runs in a private mount namespace in which
//     the host's own directory is mounted on the lab's INSTALL_ROOT, so every host has its
//     own releases and current link at the same path, as VMs do.
//   - the operator's home: the rollout runs in a private mount namespace in which a
//     temporary directory is mounted on root's home, so ssh reads that ~/.ssh (the key,
//     ~/.ssh/config and known_hosts made as OPERATIONS.md says), never the machine's.
//
// The hosts log in as root (INSTALL_SUDO= empty, as OPERATIONS.md says for root): a deploy
// user would have to be added to the machine's own /etc/passwd, which a test must not do.

// labSystemctl is the systemctl on an app host's PATH (see above). LAB_STATE (set by sshd,
// SetEnv) is the host's state directory: app.env, app.pid, app.log.
const labSystemctl = `#!/bin/sh
# Lab stand-in for systemctl: the lab's hosts are network namespaces without systemd.
set -eu
[ "${2:-}" = -- ] || { echo "lab systemctl: unexpected $*" >&2; exit 1; }
unit=$3
[ "$unit" = app.service ] || { echo "Unit $unit could not be found." >&2; exit 1; }
case $1 in
cat) exit 0 ;;
restart) ;;
*) echo "lab systemctl: unexpected $*" >&2; exit 1 ;;
esac
if [ -s "$LAB_STATE/app.pid" ]; then
	pid=$(cat "$LAB_STATE/app.pid")
	if kill -TERM "$pid" 2>/dev/null; then
		n=0
		while kill -0 "$pid" 2>/dev/null; do
			n=$((n + 1)); [ $n -lt 300 ] || { kill -KILL "$pid"; break; }
			sleep 0.1
		done
	fi
fi
set -a; . "$LAB_STATE/app.env"; set +a
setsid "$LAB_ROOT/current/app" >>"$LAB_STATE/app.log" 2>&1 </dev/null &
echo $! > "$LAB_STATE/app.pid"
`

// sessionTools are what an app host's ssh sessions find on PATH (besides labSystemctl):
// what install.sh and labSystemctl run. Removing one is the "missing tool" case.
var sessionTools = []string{"sh", "bash", "install", "mktemp", "cmp", "ln", "mv", "rm", "curl",
	"sleep", "cat", "kill", "setsid", "tail"}

// sshHost is an app VM of the lab.
type sshHost struct {
	h     *lab.Host
	dir   string // keys, sshd_config, authorized_keys, bin/, state/, opt/
	sshd  *lab.Proc
	conf  string
	state string
}

func (s *sshHost) bin() string { return filepath.Join(s.dir, "bin") }

// newSSHHost prepares h: a host key, sshd_config, the session PATH and the app's environment.
func newSSHHost(t *testing.T, h *lab.Host, installRoot, pubKey, appEnv string) *sshHost {
	t.Helper()
	s := &sshHost{h: h, dir: filepath.Join(h.Dir(), "vm")}
	s.state = filepath.Join(s.dir, "state")
	s.conf = filepath.Join(s.dir, "sshd_config")
	for _, d := range []string{s.bin(), s.state, filepath.Join(s.dir, "opt")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab-"+h.Name(), "-f", filepath.Join(s.dir, "ssh_host_ed25519_key"))
	writeFileMode(t, filepath.Join(s.dir, "authorized_keys"), pubKey, 0o600)
	writeFileMode(t, filepath.Join(s.state, "app.env"), appEnv, 0o600)
	writeFileMode(t, filepath.Join(s.bin(), "systemctl"), labSystemctl, 0o755)
	for _, tool := range sessionTools {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(s.bin(), tool)); err != nil {
			t.Fatal(err)
		}
	}
	writeFileMode(t, s.conf, fmt.Sprintf(`# sshd of lab host %[1]s: its own host key, keys only.
ListenAddress %[2]s:22
HostKey %[3]s/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile %[3]s/authorized_keys
# The lab's files live under the temporary directory (mode 1777), which StrictModes refuses
# for a key file; on a VM keep StrictModes yes (the default) and ~/.ssh as OPERATIONS.md says.
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
SetEnv PATH=%[3]s/bin LAB_STATE=%[4]s LAB_ROOT=%[5]s
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel VERBOSE
`, h.Name(), h.Addr(), s.dir, s.state, installRoot), 0o644)
	return s
}

// startSSHD runs sshd on the host, in a mount namespace of its own where the host's opt/
// is the lab's install root.
func (s *sshHost) startSSHD(t *testing.T, installRoot string) {
	t.Helper()
	p, err := s.h.Start(t.Context(), lab.ProcSpec{Name: "sshd", Argv: []string{"unshare", "--mount", "--propagation", "private",
		"sh", "-c", `mount --bind "$0" "$1" && exec /usr/sbin/sshd -D -e -f "$2"`, filepath.Join(s.dir, "opt"), installRoot, s.conf}})
	if err != nil {
		t.Fatal(err)
	}
	s.sshd = p
	waitForT(t, 10*time.Second, "sshd on "+s.h.Name(), func() bool {
		return strings.Contains(p.Log(), "Server listening on")
	})
}

func (s *sshHost) appPid() string {
	data, _ := os.ReadFile(filepath.Join(s.state, "app.pid"))
	return strings.TrimSpace(string(data))
}

func (s *sshHost) current(t *testing.T) string {
	t.Helper()
	target, _ := os.Readlink(filepath.Join(s.dir, "opt", "current"))
	return target
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeFileMode(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func waitForT(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// operator runs commands on the lb host as the operator: in a mount namespace where home
// is mounted on root's home directory.
type operator struct {
	h    *lab.Host
	home string
	env  []string
}

// run runs argv with the operator's environment; it returns the combined output, how long
// it took and the error.
func (o *operator) run(ctx context.Context, argv ...string) (string, time.Duration, error) {
	full := append([]string{"unshare", "--mount", "--propagation", "private",
		"sh", "-c", `mount --bind "$0" /root && cd /root && exec "$@"`, o.home, "env"}, o.env...)
	start := time.Now()
	out, err := o.h.Run(ctx, append(full, argv...)...)
	return out, time.Since(start), err
}

// sh runs a shell script as the operator (the commands of OPERATIONS.md, as written there).
func (o *operator) sh(t *testing.T, script string) string {
	t.Helper()
	out, _, err := o.run(t.Context(), "bash", "-euo", "pipefail", "-c", script)
	if err != nil {
		t.Fatalf("as the operator: %v\n%s", err, out)
	}
	return out
}
