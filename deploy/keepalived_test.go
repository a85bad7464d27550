package deploy

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"outrigger/internal/lab"
)

// keepalivedScripts are the scripts of deploy/keepalived that keepalived runs as root.
var keepalivedScripts = []string{"keepalived/lb-notify.sh"}

// TestKeepalivedConfigCheck: `keepalived -t` finds nothing to say about the example,
// rendered with lab addresses, on a lab host (the configured interface must exist), as
// root and as an unprivileged user; and it does complain about a broken rendering, so
// silence means something.
func TestKeepalivedConfigCheck(t *testing.T) {
	l := lab.ForTest(t, lab.Options{Need: []string{"keepalived"}})
	h := lab.AddHosts(t, l, "lb-a")[0]
	s := installScripts(t, filepath.Join(l.Dir(), "scripts"))
	vars := map[string]string{
		"SELF": h.Addr().String(), "PEER": "198.18.0.250", "IFACE": "eth0",
		"VIP": "198.18.0.200", "VIP_PREFIX": "24",
		"LB_READY":    `"` + s.lb + ` ready -admin http://127.0.0.1:9000"`, // as the example has it
		"LB_PROCESS":  s.lb + " serve",
		"NOTIFY":      s.notify,
		"SCRIPT_USER": "nobody",
	}
	good := filepath.Join(l.Dir(), "good.conf")
	if err := os.WriteFile(good, []byte(renderKeepalived(t, vars)), 0o644); err != nil {
		t.Fatal(err)
	}
	vars["ROUTER_ID"] = "300"
	vars["VIP"] = "not-an-address"
	bad := filepath.Join(l.Dir(), "bad.conf")
	if err := os.WriteFile(bad, []byte(renderKeepalived(t, vars)), 0o644); err != nil {
		t.Fatal(err)
	}
	asNobody := []string{"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"}
	for _, user := range []struct {
		name   string
		prefix []string
	}{{"root", nil}, {"nobody", asNobody}} {
		out, err := h.Run(t.Context(), append(user.prefix, "keepalived", "--config-test", "-f", good)...)
		if err != nil && !(user.name == "root" && configTestKilled(err) && strings.TrimSpace(out) == "") {
			t.Errorf("keepalived --config-test as %s: %v\n%s", user.name, err, out)
		}
		out, _ = h.Run(t.Context(), append(user.prefix, "keepalived", "--config-test", "-f", bad)...)
		for _, want := range []string{"VRID '300' not valid", "not-an-address"} {
			if !strings.Contains(out, want) {
				t.Errorf("keepalived --config-test as %s of a broken rendering: output lacks %q:\n%s", user.name, want, out)
			}
		}
	}
}

// configTestKilled reports whether `keepalived --config-test` killed itself with SIGTERM:
// keepalived 2.2.7 (Debian 12) does so once it has checked a configuration that names a
// script user, whatever it found (github.com/acassen/keepalived/issues/2617, fixed in 2.2.8);
// what it found is on its output, which must then be empty.
func configTestKilled(err error) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM
}

// TestKeepalivedScriptsSafe: the scripts keepalived runs are shellcheck-clean, executable,
// and writable by no one but their owner: with enable_script_security, keepalived skips a
// script that group or others may change, silently leaving the node without its notify.
func TestKeepalivedScriptsSafe(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Logf("shellcheck not installed (apt-get install shellcheck): checking with sh -n only")
	}
	for _, path := range keepalivedScripts {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o022 != 0 || perm&0o111 != 0o111 {
			t.Errorf("%s: mode %v, want 0755 (keepalived skips scripts writable by group or others: chmod 0755 it)", path, perm)
		}
		if out, err := exec.Command("sh", "-n", path).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", path, err, out)
		}
		if sc != "" {
			if out, err := exec.Command(sc, path).CombinedOutput(); err != nil {
				t.Errorf("shellcheck %s: %v\n%s", path, err, out)
			}
		}
	}
}

// TestLBNotifyScript runs lb-notify.sh as keepalived would, with ip, sysctl and logger
// replaced by fakes that record their calls.
func TestLBNotifyScript(t *testing.T) {
	const vip, peer = "203.0.113.10", "10.0.0.3"
	tests := []struct {
		name        string
		state       string
		onLo        bool // VIP is on lo already
		sysctlFails bool // arp_ignore cannot be set
		peerSilent  bool // the probe of the peer's host times out
		onIface     bool // VIP is on eth0 (this node holds it)
		hookMode    os.FileMode
		wantCalls   []string // in order, among the fakes' calls
		notCalls    []string
		wantLog     []string
		wantHook    string
	}{
		{name: "master takes the address off lo and hands the peer's connections back", state: "MASTER", onLo: true, hookMode: 0o755,
			wantCalls: []string{"ip -4 addr del " + vip + "/32 dev lo", "ip -4 neigh show " + peer + " dev eth0",
				"nft -f -", "ether saddr != 02:00:00:00:00:02 socket wildcard 1 dup to " + peer + ` device "eth0" drop`},
			notCalls: []string{"nft delete"},
			wantLog:  []string{"INSTANCE lb is MASTER (priority 100), virtual IP " + vip},
			wantHook: "MASTER " + vip},
		{name: "master whose peer is silent hands nothing back", state: "MASTER", peerSilent: true, onIface: true, hookMode: 0o755,
			wantCalls: []string{"nft delete table ip lb_handover"}, notCalls: []string{"nft -f -"},
			wantLog: []string{"peer " + peer + " does not answer"}, wantHook: "MASTER " + vip},
		{name: "a master run that ends after the address left keeps the rule", state: "MASTER", peerSilent: true, hookMode: 0o755,
			notCalls: []string{"nft delete", "nft -f -"}, wantHook: "MASTER " + vip},
		{name: "backup keeps the address on lo, ARP silenced first", state: "BACKUP", hookMode: 0o755,
			wantCalls: []string{"sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2", "ip -4 addr add " + vip + "/32 dev lo",
				"nft -f -", "dup to " + peer},
			notCalls: []string{"nft delete"},
			wantLog:  []string{"INSTANCE lb is BACKUP"}, wantHook: "BACKUP " + vip},
		{name: "fault with the address on lo already", state: "FAULT", onLo: true, hookMode: 0o755,
			notCalls: []string{"ip -4 addr add"}, wantHook: "FAULT " + vip},
		{name: "stop without arp_ignore leaves lo alone, hands nothing back", state: "STOP", sysctlFails: true, hookMode: 0o755,
			wantCalls: []string{"nft delete table ip lb_handover"},
			notCalls:  []string{"ip -4 addr add", "nft -f -"}, wantLog: []string{"could not set arp_ignore/arp_announce"}, wantHook: "STOP " + vip},
		{name: "a hook others may change is not run", state: "MASTER", hookMode: 0o757,
			wantLog: []string{"must be owned by root and writable by no one else"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			calls, logs, hookLog := filepath.Join(dir, "calls"), filepath.Join(dir, "log"), filepath.Join(dir, "hook.log")
			writeScript(t, filepath.Join(dir, "ip"), `echo "ip $*" >> "$CALLS"
[ "$*" = "-4 addr show dev lo" ] && [ -n "$ON_LO" ] && echo "    inet $ON_LO/32 scope global lo"
[ "$*" = "-4 addr show dev eth0" ] && [ -n "$ON_IFACE" ] && echo "    inet $ON_IFACE/24 scope global eth0"
[ "$1 $2 $3" = "-4 neigh show" ] && echo "$4 dev eth0 lladdr 02:00:00:00:00:02 REACHABLE"
exit 0`)
			writeScript(t, filepath.Join(dir, "nft"), `echo "nft $*" >> "$CALLS"; [ "$*" = "-f -" ] && cat >> "$CALLS"; exit 0`)
			writeScript(t, filepath.Join(dir, "timeout"), `exit "$TIMEOUT_STATUS"`)
			writeScript(t, filepath.Join(dir, "sysctl"), `echo "sysctl $*" >> "$CALLS"; exit "$SYSCTL_STATUS"`)
			writeScript(t, filepath.Join(dir, "logger"), `echo "$*" >> "$LOGS"`)
			hook := filepath.Join(dir, "hook")
			writeScript(t, hook, `echo "$*" >> "$HOOK_LOG"`)
			if err := os.Chmod(hook, tt.hookMode); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sh", "keepalived/lb-notify.sh", vip, peer, "eth0", "INSTANCE", "lb", tt.state, "100")
			onLo, onIface, status, timeoutStatus := "", "", "0", "1" // 1: the peer refused the probe
			if tt.onIface {
				onIface = vip
			}
			if tt.peerSilent {
				timeoutStatus = "124"
			}
			if tt.onLo {
				onLo = vip
			}
			if tt.sysctlFails {
				status = "1"
			}
			cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "CALLS="+calls, "LOGS="+logs,
				"HOOK_LOG="+hookLog, "LB_NOTIFY_HOOK="+hook, "ON_LO="+onLo, "ON_IFACE="+onIface, "SYSCTL_STATUS="+status, "TIMEOUT_STATUS="+timeoutStatus)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("lb-notify.sh: %v\n%s", err, out)
			}
			got, gotLog, gotHook := readOr(calls), readOr(logs), strings.TrimSpace(readOr(hookLog))
			at := 0
			for _, want := range tt.wantCalls {
				i := strings.Index(got[at:], want)
				if i < 0 {
					t.Errorf("calls lack %q (after what came before):\n%s", want, got)
					continue
				}
				at += i + len(want)
			}
			for _, not := range tt.notCalls {
				if strings.Contains(got, not) {
					t.Errorf("calls include %q:\n%s", not, got)
				}
			}
			for _, want := range tt.wantLog {
				if !strings.Contains(gotLog, want) {
					t.Errorf("log lacks %q:\n%s", want, gotLog)
				}
			}
			wantHook := tt.wantHook
			if os.Geteuid() != 0 && tt.hookMode&0o022 == 0 {
				wantHook = "" // the hook is not root's: skipped
			}
			if gotHook != wantHook {
				t.Errorf("hook called with %q, want %q", gotHook, wantHook)
			}
		})
	}
	out, err := exec.Command("sh", "keepalived/lb-notify.sh", vip).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "usage") {
		t.Errorf("lb-notify.sh with too few arguments: %v, %q; want status 2 and a usage line", err, out)
	}
}

func readOr(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
