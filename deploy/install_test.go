package deploy

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The fake host: ssh runs the remote command here through sh (as sshd would),
// scp copies, sudo runs its arguments, systemctl "starts" the unit by asking
// INSTALL_ROOT/current/app for its version (as systemd would start the binary
// behind the symlink), and curl answers /healthz with that version.
var fakeTools = map[string]string{
	"ssh": `#!/bin/sh
echo "ssh $*" >> "$FAKE_LOG"
while [ $# -gt 0 ]; do case $1 in --) shift; break;; -o) shift 2;; -*) shift;; *) break;; esac; done
host=$1; shift
` + fakeSSHFailure + `
[ "$host" = "$FAKE_HOST" ] || { echo "fake ssh: unknown host $host" >&2; exit 255; }
exec env PATH="${FAKE_REMOTE_PATH:-$PATH}" /bin/sh -c "$*"
`,
	"scp": `#!/bin/sh
echo "scp $*" >> "$FAKE_LOG"
while [ $# -gt 0 ]; do case $1 in --) shift; break;; -o) shift 2;; -*) shift;; *) break;; esac; done
host=${2%%:*}
` + fakeSSHFailure + `
case $2 in "$FAKE_HOST":/*) ;; *) echo "fake scp: bad target $2" >&2; exit 1;; esac
[ -z "$FAKE_SCP_FAIL" ] || { echo "scp: ${2#*:}: No space left on device" >&2; exit 1; }
cp -- "$1" "${2#*:}"
`,
	"sudo": `#!/bin/sh
echo "sudo $*" >> "$FAKE_LOG"
if [ "$1" = -n ]; then
	shift
	[ -z "$FAKE_SUDO_PASSWORD" ] || { echo "sudo: a password is required" >&2; exit 1; }
fi
exec "$@"
`,
	"systemctl": `#!/bin/sh
echo "systemctl $*" >> "$FAKE_LOG"
if [ "$1" = cat ]; then [ -z "$FAKE_NO_UNIT" ] && [ "$3" = app.service ]; exit; fi
[ "$1" = restart ] && [ "$2" = -- ] && [ "$3" = app.service ] || { echo "fake systemctl: unexpected $*" >&2; exit 1; }
"$INSTALL_ROOT/current/app" -version > "$FAKE_STATE/running"
`,
	"curl": `#!/bin/sh
echo "curl $*" >> "$FAKE_LOG"
for a; do url=$a; done
[ "$url" = "$LB_BACKEND_URL/healthz" ] || { echo "fake curl: unexpected URL $url" >&2; exit 3; }
n=$(cat "$FAKE_STATE/curl_calls" 2>/dev/null || echo 0)
echo $((n + 1)) > "$FAKE_STATE/curl_calls"
[ "$n" -ge "${FAKE_CURL_FAILS:-0}" ] || exit 7
[ -s "$FAKE_STATE/running" ] || exit 7
printf '{"status":"ok", "version": "%s","instance":"vm1"}\n' "$(cat "$FAKE_STATE/running")"
`,
}

// fakeSSHFailure makes the fake ssh and scp fail as the real ones do (exit
// 255, their own message on stderr) when FAKE_SSH_FAIL names a failure, for
// every call from the FAKE_SSH_FAIL_FROM-th on (default 1). The messages are
// OpenSSH's.
const fakeSSHFailure = `n=$(cat "$FAKE_STATE/ssh_calls" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$FAKE_STATE/ssh_calls"
if [ -n "$FAKE_SSH_FAIL" ] && [ "$n" -ge "${FAKE_SSH_FAIL_FROM:-1}" ]; then
	case $FAKE_SSH_FAIL in
	timeout) echo "ssh: connect to host $host port 22: Connection timed out" >&2 ;;
	refused) echo "ssh: connect to host $host port 22: Connection refused" >&2 ;;
	resolve) echo "ssh: Could not resolve hostname $host: Name or service not known" >&2 ;;
	hostkey) echo "No ED25519 host key is known for $host and you have requested strict checking." >&2
		echo "Host key verification failed." >&2 ;;
	changed) echo "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@" >&2
		echo "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @" >&2
		echo "Host key verification failed." >&2 ;;
	denied) echo "deploy@$host: Permission denied (publickey)." >&2 ;;
	lost) echo "Timeout, server $host not responding." >&2 ;;
	esac
	exit 255
fi
`

// installEnv is a fake host and an install root for install.sh.
type installEnv struct {
	t                *testing.T
	root, state, tmp string
	log, bin, binDir string
	env              []string
}

func newInstallEnv(t *testing.T) *installEnv {
	t.Helper()
	dir := t.TempDir()
	e := &installEnv{
		t:      t,
		root:   filepath.Join(dir, "opt", "outrigger"),
		state:  filepath.Join(dir, "state"),
		tmp:    filepath.Join(dir, "tmp"),
		log:    filepath.Join(dir, "calls.log"),
		bin:    filepath.Join(dir, "bin"),
		binDir: filepath.Join(dir, "builds"),
	}
	for _, d := range []string{e.state, e.tmp, e.bin, e.binDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range fakeTools {
		if err := os.WriteFile(filepath.Join(e.bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.env = []string{
		"PATH=" + e.bin + ":" + os.Getenv("PATH"),
		"HOME=" + dir,
		"TMPDIR=" + e.tmp,
		"LB_BACKEND_HOST=vm1.internal",
		"LB_BACKEND_URL=http://10.0.0.11:8080",
		"LB_BACKEND_NAME=app-1",
		"INSTALL_ROOT=" + e.root,
		"INSTALL_TIMEOUT=5",
		"INSTALL_POLL=0.01",
		"FAKE_HOST=vm1.internal",
		"FAKE_LOG=" + e.log,
		"FAKE_STATE=" + e.state,
	}
	return e
}

// build writes a stand-in app binary that reports version reports.
func (e *installEnv) build(name, reports string) string {
	e.t.Helper()
	p := filepath.Join(e.binDir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n[ \"$1\" = -version ] && echo "+reports+"\n"), 0o755); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// install runs install.sh and returns its exit status and output.
func (e *installEnv) install(extraEnv []string, args ...string) (int, string) {
	e.t.Helper()
	cmd := exec.Command("bash", append([]string{"install.sh"}, args...)...)
	cmd.Env = append(append([]string{}, e.env...), extraEnv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), out.String()
	}
	e.t.Fatalf("install.sh: %v", err)
	return -1, ""
}

// current returns where the current symlink points.
func (e *installEnv) current() string {
	e.t.Helper()
	fi, err := os.Lstat(filepath.Join(e.root, "current"))
	if err != nil {
		e.t.Fatalf("current: %v", err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		e.t.Fatalf("current is %v, want a symlink", fi.Mode())
	}
	target, err := os.Readlink(filepath.Join(e.root, "current"))
	if err != nil {
		e.t.Fatal(err)
	}
	return target
}

func (e *installEnv) running() string {
	data, _ := os.ReadFile(filepath.Join(e.state, "running"))
	return strings.TrimSpace(string(data))
}

func (e *installEnv) restarts() int {
	data, _ := os.ReadFile(e.log)
	return strings.Count(string(data), "systemctl restart")
}

// checkClean fails if a staged upload or a temporary link was left behind.
func (e *installEnv) checkClean() {
	e.t.Helper()
	left, _ := filepath.Glob(filepath.Join(e.tmp, "outrigger-install.*"))
	if len(left) > 0 {
		e.t.Errorf("staged files left behind: %q", left)
	}
	if _, err := os.Lstat(filepath.Join(e.root, ".current.new")); err == nil {
		e.t.Errorf("temporary link .current.new left behind")
	}
}

func TestInstallScriptSyntax(t *testing.T) {
	if out, err := exec.Command("bash", "-n", "install.sh").CombinedOutput(); err != nil {
		t.Fatalf("bash -n install.sh: %v\n%s", err, out)
	}
	fi, err := os.Stat("install.sh")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("install.sh is not executable (mode %v)", fi.Mode())
	}
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Logf("shellcheck not installed (apt-get install shellcheck): checked with bash -n only")
		return
	}
	if out, err := exec.Command(sc, "install.sh").CombinedOutput(); err != nil {
		t.Errorf("shellcheck install.sh: %v\n%s", err, out)
	}
}

func TestInstallScript(t *testing.T) {
	e := newInstallEnv(t)
	v1 := e.build("app-v1", "v1")
	v2 := e.build("app-v2", "v2")

	steps := []struct {
		name        string
		version     string
		binary      string
		env         []string
		wantCode    int
		wantCurrent string
		wantRunning string
		restarted   bool
		wantOut     string
		setup       func()
	}{
		{name: "first install", version: "v1", binary: v1, wantCurrent: "releases/v1", wantRunning: "v1", restarted: true,
			wantOut: "healthz reports version v1"},
		{name: "upgrade", version: "v2", binary: v2, wantCurrent: "releases/v2", wantRunning: "v2", restarted: true},
		{name: "same again is safe", version: "v2", binary: v2, wantCurrent: "releases/v2", wantRunning: "v2", restarted: true,
			wantOut: "release v2 already present"},
		{name: "health answers late", version: "v2", binary: v2, env: []string{"FAKE_CURL_FAILS=1000000", "INSTALL_TIMEOUT=1"}, wantCode: 1,
			wantCurrent: "releases/v2", wantRunning: "v2", restarted: true, wantOut: "did not report version v2",
			setup: func() { os.Remove(filepath.Join(e.state, "curl_calls")) }},
		{name: "health answers after a few tries", version: "v2", binary: v2, env: []string{"FAKE_CURL_FAILS=3"},
			wantCurrent: "releases/v2", wantRunning: "v2", restarted: true,
			setup: func() { os.Remove(filepath.Join(e.state, "curl_calls")) }},
		{name: "leftover temporary link from an interrupted run", version: "v2", binary: v2, wantCurrent: "releases/v2",
			wantRunning: "v2", restarted: true,
			setup: func() {
				if err := os.Symlink("releases/v1", filepath.Join(e.root, ".current.new")); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "rollback reuses the old release", version: "v1", binary: v1, wantCurrent: "releases/v1", wantRunning: "v1",
			restarted: true, wantOut: "release v1 already present"},
		{name: "a published version is never replaced", version: "v1", binary: v2, wantCode: 1, wantCurrent: "releases/v1",
			wantRunning: "v1", wantOut: "exists with different content"},
		{name: "logged in as root: no sudo", version: "v2", binary: v2, env: []string{"INSTALL_SUDO="}, wantCurrent: "releases/v2",
			wantRunning: "v2", restarted: true, wantOut: "healthz reports version v2"},
		{name: "new version that reports another", version: "v3", binary: e.build("app-v3", "v3-other"), wantCode: 1,
			env: []string{"INSTALL_TIMEOUT=0"}, wantCurrent: "releases/v3", wantRunning: "v3-other", restarted: true,
			wantOut: "did not report version v3"},
	}
	for _, s := range steps {
		if s.setup != nil {
			s.setup()
		}
		before := e.restarts()
		code, out := e.install(s.env, s.version, s.binary)
		if code != s.wantCode {
			t.Fatalf("%s: exit %d, want %d\n%s", s.name, code, s.wantCode, out)
		}
		if got := e.current(); got != s.wantCurrent {
			t.Errorf("%s: current -> %s, want %s", s.name, got, s.wantCurrent)
		}
		if got := e.running(); got != s.wantRunning {
			t.Errorf("%s: running %q, want %q", s.name, got, s.wantRunning)
		}
		if got := e.restarts() > before; got != s.restarted {
			t.Errorf("%s: restarted %t, want %t", s.name, got, s.restarted)
		}
		if !strings.Contains(out, s.wantOut) {
			t.Errorf("%s: output lacks %q:\n%s", s.name, s.wantOut, out)
		}
		e.checkClean()
	}

	// Every release is kept, with the bytes it was installed with, executable.
	for v, src := range map[string]string{"v1": v1, "v2": v2} {
		got, err := os.ReadFile(filepath.Join(e.root, "releases", v, "app"))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(src)
		if !bytes.Equal(got, want) {
			t.Errorf("releases/%s/app differs from the build it was installed from", v)
		}
		if fi, _ := os.Stat(filepath.Join(e.root, "releases", v, "app")); fi.Mode().Perm() != 0o755 {
			t.Errorf("releases/%s/app mode %v, want 0755", v, fi.Mode().Perm())
		}
	}
	// The privileged part ran under sudo; nothing was interpolated into a remote command line.
	log, _ := os.ReadFile(e.log)
	if !strings.Contains(string(log), " -- vm1.internal sudo -n bash -s") {
		t.Errorf("the install did not run as `sudo -n bash -s` over ssh:\n%s", log)
	}
	if !strings.Contains(string(log), " -- vm1.internal bash -s\n") {
		t.Errorf("with INSTALL_SUDO empty, the install did not run as `bash -s`:\n%s", log)
	}
	// Every ssh and scp call runs without prompts, with a bounded connect and keepalives.
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		if !strings.HasPrefix(line, "ssh ") && !strings.HasPrefix(line, "scp ") {
			continue
		}
		for _, opt := range []string{"-o BatchMode=yes", "-o ConnectTimeout=10", "-o ServerAliveInterval=5", "-o ServerAliveCountMax=3"} {
			if !strings.Contains(line, opt+" ") {
				t.Errorf("%q lacks %s", line, opt)
			}
		}
	}
}

func TestInstallScriptUsage(t *testing.T) {
	e := newInstallEnv(t)
	bin := e.build("app", "v1")
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"no arguments", nil, nil, "want 2 arguments"},
		{"bad version", []string{"../v1", bin}, nil, "bad VERSION"},
		{"version with a quote", []string{"v1'x", bin}, nil, "bad VERSION"},
		{"missing binary", []string{"v1", filepath.Join(e.binDir, "nope")}, nil, "not a readable file"},
		{"no host", []string{"v1", bin}, []string{"LB_BACKEND_HOST="}, "LB_BACKEND_HOST is not set"},
		{"host that looks like an option", []string{"v1", bin}, []string{"LB_BACKEND_HOST=-oProxyCommand=x"}, "bad LB_BACKEND_HOST"},
		{"bad url", []string{"v1", bin}, []string{"LB_BACKEND_URL=ftp://x"}, "bad LB_BACKEND_URL"},
		{"relative root", []string{"v1", bin}, []string{"INSTALL_ROOT=opt"}, "bad INSTALL_ROOT"},
		{"bad connect timeout", []string{"v1", bin}, []string{"INSTALL_SSH_CONNECT_TIMEOUT=0"}, "bad INSTALL_SSH_CONNECT_TIMEOUT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := e.install(tc.env, tc.args...)
			if code != 2 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output %q; want 2 and %q", code, out, tc.want)
			}
		})
	}
	if data, _ := os.ReadFile(e.log); len(data) > 0 {
		t.Errorf("a refused install contacted the host:\n%s", data)
	}
}

// remotePath makes a PATH for the fake VM with every tool install.sh needs
// there except those in without.
func (e *installEnv) remotePath(without ...string) string {
	e.t.Helper()
	dir := filepath.Join(e.t.TempDir(), "remote-bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	skip := map[string]bool{}
	for _, w := range without {
		skip[w] = true
	}
	for _, tool := range []string{"sh", "bash", "install", "mktemp", "cmp", "ln", "mv", "rm", "cp", "cat", "sleep", "env",
		"sudo", "systemctl", "curl"} {
		if skip[tool] {
			continue
		}
		target := filepath.Join(e.bin, tool)
		if _, ok := fakeTools[tool]; !ok {
			p, err := exec.LookPath(tool)
			if err != nil {
				e.t.Fatalf("%s: %v", tool, err)
			}
			target = p
		}
		if err := os.Symlink(target, filepath.Join(dir, tool)); err != nil {
			e.t.Fatal(err)
		}
	}
	return dir
}

// TestInstallScriptFailures: each way a VM can fail an install stops it with
// exit status 1 and a message naming the cause; those found before anything
// changed (unreachable, host key, ssh key, missing tool, sudo, unit) say so
// and leave the VM exactly as it was.
func TestInstallScriptFailures(t *testing.T) {
	tests := []struct {
		name      string
		env       func(e *installEnv) []string
		want      string
		unchanged bool // nothing on the VM changed: no release, no link, no restart
	}{
		{"blackholed host", func(*installEnv) []string { return []string{"FAKE_SSH_FAIL=timeout"} },
			"vm1.internal did not answer on its ssh port within 10s (host down, or a firewall drops the packets); nothing was changed", true},
		{"refused", func(*installEnv) []string { return []string{"FAKE_SSH_FAIL=refused"} },
			"vm1.internal refused the ssh connection (sshd not running, or another port)", true},
		{"unknown name", func(*installEnv) []string { return []string{"FAKE_SSH_FAIL=resolve"} },
			"cannot resolve vm1.internal", true},
		{"unknown host key", func(*installEnv) []string { return []string{"FAKE_SSH_FAIL=hostkey"} },
			"vm1.internal's host key is not in known_hosts: add it after checking its fingerprint", true},
		{"changed host key", func(*installEnv) []string { return []string{"FAKE_SSH_FAIL=changed"} },
			"vm1.internal's host key differs from the one in known_hosts", true},
		{"ssh key refused", func(*installEnv) []string { return []string{"FAKE_SSH_FAIL=denied"} },
			"vm1.internal refused the ssh key", true},
		{"no curl on the VM", func(e *installEnv) []string { return []string{"FAKE_REMOTE_PATH=" + e.remotePath("curl")} },
			"vm1.internal lacks curl (on Debian: apt-get install curl); nothing was changed", true},
		{"no curl nor sudo on the VM", func(e *installEnv) []string {
			return []string{"FAKE_REMOTE_PATH=" + e.remotePath("curl", "systemctl", "sudo", "cmp")}
		}, "vm1.internal lacks cmp curl systemctl sudo (on Debian: apt-get install diffutils curl systemd sudo)", true},
		{"sudo wants a password", func(*installEnv) []string { return []string{"FAKE_SUDO_PASSWORD=1"} },
			"sudo on vm1.internal asks for a password", true},
		{"no unit", func(*installEnv) []string { return []string{"FAKE_NO_UNIT=1"} },
			"vm1.internal has no app.service installed", true},
		{"upload fails", func(*installEnv) []string { return []string{"FAKE_SCP_FAIL=1"} },
			"copying ", true},
		{"connection lost during the install", func(*installEnv) []string {
			return []string{"FAKE_SSH_FAIL=lost", "FAKE_SSH_FAIL_FROM=3"}
		}, "lost the ssh connection to vm1.internal (it stopped answering) during the install", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newInstallEnv(t)
			bin := e.build("app", "v1")
			code, out := e.install(tc.env(e), "v1", bin)
			t.Logf("install.sh said:\n%s", out)
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit 1 and %q", code, out, tc.want)
			}
			if !tc.unchanged {
				return
			}
			if !strings.Contains(out, "nothing was changed") {
				t.Errorf("the message does not say the VM is unchanged:\n%s", out)
			}
			if _, err := os.Lstat(filepath.Join(e.root, "current")); err == nil {
				t.Errorf("current was switched")
			}
			if _, err := os.Stat(filepath.Join(e.root, "releases")); err == nil {
				t.Errorf("a release directory was made")
			}
			if e.restarts() != 0 {
				t.Errorf("the unit was restarted")
			}
			e.checkClean()
		})
	}
}
