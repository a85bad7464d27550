package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unit is a parsed systemd unit file: section -> key -> every value, in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// get returns the last value of a key ("" if absent), as systemd applies it.
func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// seconds parses a systemd time span of the forms this kit uses: 45s, 2min, 1min30s.
func seconds(t *testing.T, span string) float64 {
	t.Helper()
	d, err := time.ParseDuration(strings.ReplaceAll(span, "min", "m"))
	if err != nil {
		t.Fatalf("time span %q: %v", span, err)
	}
	return d.Seconds()
}

var units = []struct {
	file   string
	binary string // ExecStart's binary, replaced by a stand-in for systemd-analyze verify
	want   map[string]string
	// stopAfter is how long the program may legitimately take to stop after SIGTERM;
	// TimeoutStopSec must exceed it by stopMargin.
	stopAfter time.Duration
}{
	{
		file:   "systemd/lb.service",
		binary: "/opt/outrigger/current/lb",
		want: map[string]string{
			"ExecReload":            "/opt/outrigger/current/lb reload -config /etc/lb/lb.yaml",
			"AmbientCapabilities":   "CAP_NET_BIND_SERVICE",
			"CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
			"StateDirectory":        "lb",
			"LoadCredential":        "admin-token:/etc/lb/admin-token",
			"WatchdogSec":           "20s",
		},
		stopAfter: 15*time.Second + 30*time.Second, // shutdown_delay (up to 15s, for a pair) + drain_timeout
	},
	{
		file:   "systemd/app.service",
		binary: "/opt/outrigger/current/app",
		want: map[string]string{
			"EnvironmentFile":       "/etc/app/app.env",
			"CapabilityBoundingSet": "",
			"PrivateUsers":          "yes",
			"WatchdogSec":           "30s",
		},
		stopAfter: 5*time.Second + 25*time.Second, // SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT
	},
}

// stopMargin is how much longer than a program's own stop time systemd must wait before
// SIGKILL: a loaded machine, the last log lines, the state file.
const stopMargin = 10 * time.Second

// common are the directives both units must have.
var common = map[string]string{
	"Type":                     "notify",
	"Restart":                  "always",
	"RestartPreventExitStatus": "2",
	"LogRateLimitIntervalSec":  "0",
	"DynamicUser":              "yes",
	"ProtectSystem":            "strict",
	"ProtectHome":              "yes",
	"PrivateTmp":               "yes",
	"PrivateDevices":           "yes",
	"NoNewPrivileges":          "yes",
	"RestrictAddressFamilies":  "AF_INET AF_INET6 AF_UNIX",
	"RestrictNamespaces":       "yes",
	"RestrictSUIDSGID":         "yes",
	"MemoryDenyWriteExecute":   "yes",
	"LockPersonality":          "yes",
	"SystemCallArchitectures":  "native",
	"ProtectKernelTunables":    "yes",
	"ProtectKernelModules":     "yes",
	"ProtectControlGroups":     "yes",
	"UMask":                    "0077",
	// WATCHDOG=1 comes from the main process (NotifyAccess=main); a frozen process is
	// killed with SIGABRT and, thanks to GOTRACEBACK=crash, dies of it (not exit status 2,
	// which RestartPreventExitStatus= would not restart); no core file holds secrets.
	"NotifyAccess": "main",
	"Environment":  "GOTRACEBACK=crash",
	"LimitCORE":    "0",
}

// secretish matches variable names that must never be set with Environment=.
var secretish = regexp.MustCompile(`(?i)(DATABASE_URL|SESSION_KEYS|TOKEN|PASSWORD|SECRET|KEY)`)

// TestUnitDirectives checks by parsing that each unit has what issue 4 asks
// for; it runs whether or not systemd is installed.
func TestUnitDirectives(t *testing.T) {
	for _, tc := range units {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			u := parseUnit(t, tc.file)
			for k, want := range common {
				if got := u.get("Service", k); got != want {
					t.Errorf("[Service] %s = %q, want %q", k, got, want)
				}
			}
			for k, want := range tc.want {
				if vs, ok := u["Service"][k]; !ok {
					t.Errorf("[Service] %s missing, want %q", k, want)
				} else if got := vs[len(vs)-1]; got != want {
					t.Errorf("[Service] %s = %q, want %q", k, got, want)
				}
			}
			if got := u.get("Service", "ExecStart"); !strings.HasPrefix(got, tc.binary) {
				t.Errorf("ExecStart = %q, want it to run %s", got, tc.binary)
			}
			filters := strings.Join(u["Service"]["SystemCallFilter"], " ")
			if !strings.Contains(filters, "@system-service") {
				t.Errorf("SystemCallFilter = %q, want @system-service", filters)
			}
			if wd := seconds(t, u.get("Service", "WatchdogSec")); wd < 10 {
				t.Errorf("WatchdogSec = %vs: a ping is due every half of it, and a loaded VM needs slack; want at least 10s", wd)
			}
			if u.get("Service", "WatchdogSignal") != "" {
				t.Errorf("WatchdogSignal is set: keep systemd's SIGABRT, which Go answers with a goroutine dump")
			}
			if stop := seconds(t, u.get("Service", "TimeoutStopSec")); stop < (tc.stopAfter + stopMargin).Seconds() {
				t.Errorf("TimeoutStopSec = %vs, want at least %v (the program's own stop time) + %v", stop, tc.stopAfter, stopMargin)
			}
			for _, v := range u["Service"]["Environment"] {
				if secretish.MatchString(v) {
					t.Errorf("Environment=%s: secrets go through LoadCredential= or EnvironmentFile=", v)
				}
			}
			if got := u.get("Install", "WantedBy"); got != "multi-user.target" {
				t.Errorf("[Install] WantedBy = %q, want multi-user.target", got)
			}
		})
	}
}

// TestUnitsVerify runs systemd-analyze verify (and an offline security
// review) on the units when systemd-analyze exists. The binaries under
// /opt/outrigger do not exist here, so the test verifies copies whose ExecStart
// runs a stand-in executable; everything else is verified as written.
func TestUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Logf("systemd-analyze not installed: the units were checked by TestUnitDirectives only")
		return
	}
	dir := t.TempDir()
	stand := filepath.Join(dir, "stand-in")
	if err := os.WriteFile(stand, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range units {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			data, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), tc.binary) {
				t.Fatalf("%s does not run %s", tc.file, tc.binary)
			}
			copyPath := filepath.Join(dir, filepath.Base(tc.file))
			if err := os.WriteFile(copyPath, []byte(strings.ReplaceAll(string(data), tc.binary, stand)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(sa, "verify", copyPath).CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				// verify reports unknown keys and bad values as warnings with status 0.
				t.Errorf("systemd-analyze verify %s: %v\n%s", tc.file, err, out)
			}
			// Exposure on systemd's 0-10 scale, times 10: at most 2.5 ("OK").
			out, err = exec.Command(sa, "security", "--offline=true", "--threshold=25", copyPath).CombinedOutput()
			if err != nil {
				t.Errorf("systemd-analyze security %s: %v\n%s", tc.file, err, out)
			}
			if m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out); m == nil {
				t.Errorf("systemd-analyze security printed no exposure level:\n%s", out)
			} else if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.5 {
				t.Errorf("exposure level %.1f, want at most 2.5", level)
			}
		})
	}
}
