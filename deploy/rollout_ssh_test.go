package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"outrigger/internal/admin"
	"outrigger/internal/lab"
)

// TestRolloutOverSSH is issue 14's rollout over real ssh, in one lab: an lb host (lb,
// PostgreSQL, the operator) and two app hosts running sshd and the real app. The operator
// makes the rollout key and known_hosts as OPERATIONS.md says (install.sh refuses the
// unknown host key before that); install.sh installs v1 on
// each host; `lb rollout -- install.sh v2` replaces both under load with no failed request;
// then three broken app-1s each stop a rollback to v1 with a message naming the cause,
// app-1 left drained and unchanged: sshd not running (refused), the host blackholed
// (ConnectTimeout, not two minutes), curl missing (the preflight refuses before changing
// anything). Fixed, the same rollback finishes, starting with the drained backend and
// reusing the v1 release directories.
func TestRolloutOverSSH(t *testing.T) {
	l := lab.ForTest(t, lab.Options{Need: []string{"sshd", "ssh", "unshare"}})
	began := time.Now()
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // sshd's privilege separation directory
		t.Fatal(err)
	}
	hosts := lab.AddHosts(t, l, "lb", "app-1", "app-2")
	lbh := hosts[0]
	pg := lab.PostgresForTest(t, lbh, 5432)

	binDir := filepath.Join(l.Dir(), "builds")
	lbBin := buildCmd(t, binDir, "lb", "v1")
	apps := map[string]string{}
	for _, v := range []string{"v1", "v2"} {
		apps[v] = buildCmd(t, binDir, "app", v)
	}
	installSh, err := filepath.Abs("install.sh")
	if err != nil {
		t.Fatal(err)
	}
	installRoot := filepath.Join(l.Dir(), "opt", "outrigger")
	if err := os.MkdirAll(installRoot, 0o755); err != nil {
		t.Fatal(err)
	}

	// The operator's key and ~/.ssh/config (OPERATIONS.md, "The deploy user"; User root here).
	home := filepath.Join(l.Dir(), "operator")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(l.Dir(), "admin-token")
	writeFileMode(t, token, randomHex(t)+"\n", 0o600)
	o := &operator{h: lbh, home: home, env: []string{
		"LB_ADMIN=http://127.0.0.1:9000", "LB_ADMIN_TOKEN_FILE=" + token,
		"INSTALL_SUDO=", "INSTALL_ROOT=" + installRoot, "INSTALL_SSH_CONNECT_TIMEOUT=3",
		"INSTALL_TIMEOUT=30", "INSTALL_POLL=0.2"}}
	addrs := []string{hosts[1].Addr().String(), hosts[2].Addr().String()}
	o.sh(t, `install -d -m 0700 ~/.ssh
ssh-keygen -t ed25519 -N '' -C "outrigger-rollout@$(hostname)" -f ~/.ssh/outrigger_rollout
cat >> ~/.ssh/config <<'SSH'
Host `+strings.Join(addrs, " ")+`
    User root
    IdentityFile ~/.ssh/outrigger_rollout
    IdentitiesOnly yes
SSH`)
	pub, err := os.ReadFile(filepath.Join(home, ".ssh", "outrigger_rollout.pub"))
	if err != nil {
		t.Fatal(err)
	}

	vms := make([]*sshHost, 2)
	for i, h := range hosts[1:] {
		env := fmt.Sprintf("DATABASE_URL=%s\nAPP_LISTEN=%s:8080\nSESSION_KEYS=%s\nTRUSTED_PROXIES=%s/32\nAPP_INSTANCE=%s\nLOG_FORMAT=json\nSHUTDOWN_DELAY=1s\nSHUTDOWN_TIMEOUT=5s\n",
			pg.DSN("postgres"), h.Addr(), randomHex(t), lbh.Addr(), h.Name())
		vms[i] = newSSHHost(t, h, installRoot, string(pub), env)
		vms[i].startSSHD(t, installRoot)
	}
	app1 := vms[0]

	// Before the known_hosts step, BatchMode refuses the unknown host key, and install.sh says so.
	out, _, err := o.run(t.Context(), "env", "LB_BACKEND_HOST="+addrs[0], "LB_BACKEND_URL=http://"+addrs[0]+":8080", installSh, "v1", apps["v1"])
	if want := "host key is not in known_hosts"; err == nil || !strings.Contains(out, want) {
		t.Errorf("install.sh before known_hosts: %v, want a failure saying %q:\n%s", err, want, out)
	}

	// known_hosts, as OPERATIONS.md says: scan, compare each fingerprint with the one the VM
	// shows on its own console, then trust.
	scan := o.sh(t, `ssh-keyscan -t ed25519 `+strings.Join(addrs, " ")+` > ~/app-hosts 2>/dev/null
ssh-keygen -lf ~/app-hosts`)
	for _, vm := range vms {
		own := strings.Fields(run(t, "ssh-keygen", "-lf", filepath.Join(vm.dir, "ssh_host_ed25519_key.pub")))[1]
		if !strings.Contains(scan, own+" "+vm.h.Addr().String()) {
			t.Fatalf("ssh-keyscan's fingerprint of %s is not the VM's own %s:\n%s", vm.h.Name(), own, scan)
		}
	}
	o.sh(t, `cat ~/app-hosts >> ~/.ssh/known_hosts
for h in `+strings.Join(addrs, " ")+`; do ssh -o BatchMode=yes root@$h true; done`)

	// The first install on each VM: install.sh by hand (OPERATIONS.md, "app VMs").
	for _, vm := range vms {
		out, _, err := o.run(t.Context(), "env", "LB_BACKEND_HOST="+vm.h.Addr().String(),
			"LB_BACKEND_URL=http://"+vm.h.Addr().String()+":8080", installSh, "v1", apps["v1"])
		if err != nil {
			t.Fatalf("install.sh v1 on %s: %v\n%s", vm.h.Name(), err, out)
		}
	}

	cfg := filepath.Join(l.Dir(), "lb.yaml")
	writeFileMode(t, cfg, fmt.Sprintf(`listen: "%s:8000"
admin:
  listen: 127.0.0.1:9000
  token_file: %s
health_check:
  interval: 250ms
  timeout: 250ms
  rise: 2
  fall: 2
drain_timeout: 5s
backends:
  - name: app-1
    url: http://%s:8080
  - name: app-2
    url: http://%s:8080
`, lbh.Addr(), token, addrs[0], addrs[1]), 0o644)
	if _, err := lbh.Start(t.Context(), lab.ProcSpec{Name: "lb", Argv: []string{lbBin, "serve", "-config", cfg}, Env: []string{"LOG_FORMAT=json"}}); err != nil {
		t.Fatal(err)
	}
	tok, _ := os.ReadFile(token)
	ac := &admin.Client{BaseURL: "http://127.0.0.1:9000", Token: strings.TrimSpace(string(tok)), HTTP: lbh.HTTPClient(5 * time.Second)}
	backends := func() map[string]admin.Backend {
		bs, err := ac.Backends(t.Context())
		if err != nil {
			return nil
		}
		m := map[string]admin.Backend{}
		for _, b := range bs {
			m[b.Name] = b
		}
		return m
	}
	waitForT(t, 30*time.Second, "both backends healthy on v1", func() bool {
		m := backends()
		return m["app-1"].Healthy && m["app-2"].Healthy && m["app-1"].Version == "v1" && m["app-2"].Version == "v1"
	})
	setup := time.Since(began)

	// The rollout to v2, under a light load through lb.
	stop := make(chan struct{})
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	client := lbh.HTTPClient(10 * time.Second)
	wg.Go(func() {
		for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			sent.Add(1)
			resp, err := client.Get("http://" + lbh.Addr().String() + ":8000/healthz")
			if err != nil {
				failed.Add(1)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed.Add(1)
			}
		}
	})
	rollout := func(version string) (string, time.Duration, error) {
		return o.run(t.Context(), lbBin, "rollout", "-v", "-expect-version", version, "--", installSh, version, apps[version])
	}
	out, took, err := rollout("v2")
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("rollout to v2: %v\n%s", err, out)
	}
	m := backends()
	for _, name := range []string{"app-1", "app-2"} {
		if b := m[name]; b.Version != "v2" || b.State != "active" || !b.Healthy {
			t.Errorf("after the rollout %s is %s, %s, healthy %v; want v2, active, healthy", name, b.Version, b.State, b.Healthy)
		}
		if !regexp.MustCompile(`(?m)`+name+`\s+drain`).MatchString(out) || !regexp.MustCompile(`(?m)`+name+`\s+enable`).MatchString(out) {
			t.Errorf("the rollout's output shows no drain and enable of %s:\n%s", name, out)
		}
	}
	if failed.Load() != 0 || sent.Load() == 0 {
		t.Errorf("%d of %d requests through lb failed during the rollout, want none of some", failed.Load(), sent.Load())
	}
	t.Logf("rollout to v2 over ssh: %v for 2 backends; %d requests through lb meanwhile, %d failed", took.Round(100*time.Millisecond), sent.Load(), failed.Load())

	// Each broken app-1 stops the rollback to v1 with its cause, app-1 left drained and as it was.
	cases := []struct {
		name         string
		want         string
		breakIt, fix func()
		within       time.Duration
	}{
		{name: "sshd not running", want: "refused the ssh connection",
			breakIt: func() { stopProc(t, app1.sshd) },
			fix:     func() { app1.startSSHD(t, installRoot) }},
		{name: "blackholed", want: "did not answer on its ssh port within 3s", within: 30 * time.Second,
			breakIt: func() {
				if err := app1.h.Blackhole(t.Context()); err != nil {
					t.Fatal(err)
				}
			},
			fix: func() {
				if err := app1.h.Unblackhole(t.Context()); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "curl missing", want: "lacks curl (on Debian: apt-get install curl); nothing was changed on it",
			breakIt: func() { os.Remove(filepath.Join(app1.bin(), "curl")) },
			fix: func() {
				p, _ := exec.LookPath("curl")
				if err := os.Symlink(p, filepath.Join(app1.bin(), "curl")); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tc := range cases {
		pid, cur := app1.appPid(), app1.current(t)
		tc.breakIt()
		out, took, err := rollout("v1")
		tc.fix()
		if err == nil {
			t.Fatalf("%s: the rollout succeeded:\n%s", tc.name, out)
		}
		for _, want := range []string{tc.want, "rollout: app-1 is left drained", "rollout STOPPED: 0 of 2"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: the rollout's output lacks %q:\n%s", tc.name, want, out)
			}
		}
		if tc.within > 0 && took > tc.within {
			t.Errorf("%s: the rollout took %v to fail, want at most %v", tc.name, took, tc.within)
		}
		m := backends()
		if m["app-1"].State != "draining" || m["app-2"].State != "active" || m["app-2"].Version != "v2" {
			t.Errorf("%s: app-1 %s, app-2 %s %s; want app-1 draining, app-2 active on v2", tc.name, m["app-1"].State, m["app-2"].State, m["app-2"].Version)
		}
		if got := app1.appPid(); got != pid || app1.current(t) != cur {
			t.Errorf("%s: app-1 changed (pid %s -> %s, current %s -> %s), want it as it was", tc.name, pid, got, cur, app1.current(t))
		}
		t.Logf("%s: the rollout stopped after %v: %s", tc.name, took.Round(100*time.Millisecond), tc.want)
	}

	// Fixed: the same rollback starts with the drained app-1 and finishes.
	waitForT(t, 30*time.Second, "app-1 healthy again", func() bool { return backends()["app-1"].Healthy })
	out, took, err = rollout("v1")
	if err != nil {
		t.Fatalf("rollback to v1 after the fixes: %v\n%s", err, out)
	}
	if n := strings.Count(out, "release v1 already present"); n != 2 {
		t.Errorf("install.sh said %d times that release v1 was already present, want 2 (a rollback reuses it):\n%s", n, out)
	}
	if i1, i2 := strings.Index(out, "app-1"), strings.Index(out, "app-2"); i1 < 0 || i2 < i1 {
		t.Errorf("the rollout did not start with the drained app-1:\n%s", out)
	}
	m = backends()
	for _, name := range []string{"app-1", "app-2"} {
		if b := m[name]; b.Version != "v1" || b.State != "active" {
			t.Errorf("after the rollback %s is %s, %s; want v1, active", name, b.Version, b.State)
		}
	}
	t.Logf("rollback to v1: %v; lab set-up (hosts, PostgreSQL, builds, keys, first installs) %v; whole test %v",
		took.Round(100*time.Millisecond), setup.Round(100*time.Millisecond), time.Since(began).Round(100*time.Millisecond))
}

// buildCmd builds ./cmd/NAME with its version set into dir/NAME-VERSION.
func buildCmd(t *testing.T, dir, name, version string) string {
	t.Helper()
	out := filepath.Join(dir, name+"-"+version)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "-ldflags", "-X main.version="+version, "../cmd/"+name)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	return out
}

func stopProc(t *testing.T, p *lab.Proc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Logf("stop %s: %v", p.Name(), err)
	}
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
