package labfleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"time"

	"go.yaml.in/yaml/v3"

	"outrigger/internal/fleet"
	"outrigger/internal/lab"
)

var lbNames = []string{"lb-a", "lb-b"}

// An LB is an lb host: `lb serve` and, in a pair, keepalived.
type LB struct {
	Name       string
	Host       *lab.Host
	Proc       *lab.Proc // the current lb run
	Keepalived *lab.Proc // nil with one lb
	// Bin is where this host's lb binary is installed; keepalived tracks "Bin serve", so
	// an upgrade copies the new binary here (Install) rather than run it from elsewhere.
	Bin    string
	Config string // its lb.yaml
	// Admin is a client of its admin API (127.0.0.1:9000 inside the host).
	Admin *fleet.Admin
	conf  string // its keepalived.conf
}

// LBConfigDefaults returns the lb configuration the fleet writes for lb, before
// Options.LBConfig: DESIGN's highly available example (per_try_timeout 10s above the
// apps' DB_RETRY_TIMEOUT 8s, shutdown_delay 5s, longer than keepalived takes to move the
// address) with short health-check intervals.
func (f *Fleet) LBConfigDefaults(lb *LB) map[string]any {
	var backends []map[string]any
	for _, a := range f.Apps {
		backends = append(backends, map[string]any{"name": a.Name, "url": a.URL})
	}
	return map[string]any{
		"listen":     fmt.Sprintf(":%d", HTTPSPort),
		"tls":        map[string]any{"cert_file": f.certFile, "key_file": f.keyFile},
		"admin":      map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", AdminPort), "token_file": filepath.Join(f.dir, "admin-token")},
		"state_file": filepath.Join(lb.Host.Dir(), "lb-state.json"),
		"health_check": map[string]any{"path": "/healthz", "interval": "500ms", "timeout": "400ms",
			"rise": 2, "fall": 2},
		"proxy":          map[string]any{"dial_timeout": "1s", "per_try_timeout": "10s"},
		"shutdown_delay": "5s",
		"drain_timeout":  "10s",
		"backends":       backends,
	}
}

// merge sets over's keys in base, merging maps one level deep.
func merge(base, over map[string]any) {
	for k, v := range over {
		if m, ok := v.(map[string]any); ok {
			if b, ok := base[k].(map[string]any); ok {
				for kk, vv := range m {
					b[kk] = vv
				}
				continue
			}
		}
		base[k] = v
	}
}

// startLBs writes the shared files (certificate for the virtual IP, admin token,
// keepalived's scripts), then starts each lb host: lb, then keepalived.
func (f *Fleet) startLBs(ctx context.Context) error {
	var err error
	if f.opts.LBs == 2 {
		if f.VIP, err = f.Lab.AllocAddr(); err != nil {
			return err
		}
	} else {
		f.VIP = f.Lab.Host(lbNames[0]).Addr()
	}
	f.URL = "https://" + hostPort(f.VIP, HTTPSPort)
	if f.certFile, f.keyFile, f.CertPool, err = fleet.SelfSigned(f.dir, time.Now(), net.IP(f.VIP.AsSlice())); err != nil {
		return err
	}
	f.HTTP = f.NewHTTPClient()
	if f.token, err = randomHex(24); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.dir, "admin-token"), []byte(f.token+"\n"), 0o600); err != nil {
		return fmt.Errorf("labfleet: admin token: %w", err)
	}
	if err := f.installScripts(); err != nil {
		return err
	}
	for i, name := range lbNames[:f.opts.LBs] {
		h := f.Lab.Host(name)
		lb := &LB{Name: name, Host: h, Bin: filepath.Join(h.Dir(), "bin", "lb"),
			Config: filepath.Join(h.Dir(), "lb.yaml"), conf: filepath.Join(h.Dir(), "keepalived.conf")}
		tr := h.HTTPTransport()
		lb.Admin = &fleet.Admin{BaseURL: fmt.Sprintf("http://127.0.0.1:%d", AdminPort), Token: f.token,
			HTTP: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
		f.LBs = append(f.LBs, lb)
		if err := lb.Install(f.opts.LB); err != nil {
			return err
		}
		cfg := f.LBConfigDefaults(lb)
		merge(cfg, f.opts.LBConfig)
		b, err := yaml.Marshal(cfg)
		if err != nil {
			return fmt.Errorf("labfleet: lb config: %w", err)
		}
		if err := os.WriteFile(lb.Config, b, 0o600); err != nil {
			return fmt.Errorf("labfleet: %w", err)
		}
		if f.opts.LBs == 2 {
			if err := f.writeKeepalived(lb, f.Lab.Host(lbNames[1-i])); err != nil {
				return err
			}
		}
		if err := f.StartLB(ctx, lb); err != nil {
			return err
		}
	}
	if f.opts.LBs == 2 {
		for _, lb := range f.LBs {
			if err := f.StartKeepalived(ctx, lb); err != nil {
				return err
			}
		}
		if _, err := f.WaitHolder(ctx, f.opts.StartTimeout); err != nil {
			return err
		}
	}
	return nil
}

// Install copies binary to lb.Bin (a new file renamed into place, as a package upgrade
// does), keeping the path keepalived tracks.
func (lb *LB) Install(binary string) error {
	if err := os.MkdirAll(filepath.Dir(lb.Bin), 0o755); err != nil {
		return fmt.Errorf("labfleet: %w", err)
	}
	src, err := os.Open(binary)
	if err != nil {
		return fmt.Errorf("labfleet: install lb: %w", err)
	}
	defer src.Close()
	tmp := lb.Bin + ".new"
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("labfleet: install lb: %w", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("labfleet: install lb: %w", err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("labfleet: install lb: %w", err)
	}
	if err := os.Rename(tmp, lb.Bin); err != nil {
		return fmt.Errorf("labfleet: install lb: %w", err)
	}
	return nil
}

// StartLB starts `lb serve` on lb's host and waits until `lb ready` passes there (it
// listens and has healthy backends).
func (f *Fleet) StartLB(ctx context.Context, lb *LB) error {
	p, err := lb.Host.Start(ctx, lab.ProcSpec{Name: "lb", Argv: []string{lb.Bin, "serve", "-config", lb.Config},
		Env: []string{"LOG_FORMAT=json"}})
	if err != nil {
		return err
	}
	lb.Proc = p
	ctx, cancel := context.WithTimeout(ctx, f.opts.StartTimeout)
	defer cancel()
	return poll(ctx, lb.Name+" ready", func() error {
		select {
		case <-p.Exited():
			return fmt.Errorf("lb on %s exited: %v\n%s", lb.Name, p.Wait(ctx), tail(p.Log()))
		default:
		}
		return lb.Ready(ctx)
	})
}

// Ready runs `lb ready` on lb's host: nil when its /readyz answers 200.
func (lb *LB) Ready(ctx context.Context) error {
	out, err := lb.Host.Run(ctx, lb.Bin, "ready", "-admin", lb.Admin.BaseURL)
	if err != nil {
		return fmt.Errorf("lb ready on %s: %w: %s", lb.Name, err, out)
	}
	return nil
}

// Version is the version the running lb reports (its admin GET /healthz).
func (lb *LB) Version(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, lb.Admin.BaseURL+"/healthz", nil)
	if err != nil {
		return "", err
	}
	resp, err := lb.Admin.HTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("labfleet: version of %s: %w", lb.Name, err)
	}
	defer resp.Body.Close()
	var v struct {
		Version string `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", fmt.Errorf("labfleet: version of %s: %w", lb.Name, err)
	}
	return v.Version, nil
}

// Restart stops lb (SIGTERM: /readyz 503 at once, serving for shutdown_delay, then the
// drain), waits until it exited, installs binary ("" keeps the one installed) and starts
// it, then waits until it is ready: an upgrade's steps.
func (f *Fleet) Restart(ctx context.Context, lb *LB, binary string) error {
	if lb.Proc != nil {
		if err := lb.Proc.Stop(ctx); err != nil {
			return fmt.Errorf("labfleet: stop lb on %s: %w", lb.Name, err)
		}
	}
	if binary != "" {
		if err := lb.Install(binary); err != nil {
			return err
		}
	}
	return f.StartLB(ctx, lb)
}

// StartKeepalived starts keepalived on lb's host with the fleet's configuration.
func (f *Fleet) StartKeepalived(ctx context.Context, lb *LB) error {
	p, err := lb.Host.StartKeepalived(ctx, lb.conf, []string{
		"PATH=" + f.scripts + ":" + os.Getenv("PATH"),
		"NOTIFY_LOG=" + filepath.Join(lb.Host.Dir(), "notify.log"),
	})
	if err != nil {
		return err
	}
	lb.Keepalived = p
	return nil
}

// NotifyLog is what deploy/keepalived/lb-notify.sh logged on lb's host.
func (lb *LB) NotifyLog() string {
	b, _ := os.ReadFile(filepath.Join(lb.Host.Dir(), "notify.log"))
	return string(b)
}

// deployDir is the repository's deploy directory, found from this source file.
func deployDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("labfleet: cannot find deploy/: no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy"), nil
}

// installScripts puts deploy/keepalived/lb-notify.sh and a logger(1) that writes to
// $NOTIFY_LOG (the lab has no syslog) where enable_script_security accepts them.
func (f *Fleet) installScripts() error {
	dir, err := deployDir()
	if err != nil {
		return err
	}
	f.scripts = filepath.Join(f.dir, "scripts")
	if err := os.MkdirAll(f.scripts, 0o755); err != nil {
		return fmt.Errorf("labfleet: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "keepalived", "lb-notify.sh"))
	if err != nil {
		return fmt.Errorf("labfleet: %w", err)
	}
	if err := os.WriteFile(filepath.Join(f.scripts, "lb-notify.sh"), b, 0o755); err != nil {
		return fmt.Errorf("labfleet: %w", err)
	}
	logger := "#!/bin/sh\necho \"$(date +%T.%N) $*\" >> \"$NOTIFY_LOG\"\n"
	if err := os.WriteFile(filepath.Join(f.scripts, "logger"), []byte(logger), 0o755); err != nil {
		return fmt.Errorf("labfleet: %w", err)
	}
	return nil
}

// writeKeepalived renders deploy/keepalived/keepalived.conf for lb with peer.
func (f *Fleet) writeKeepalived(lb *LB, peer *lab.Host) error {
	dir, err := deployDir()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, "keepalived", "keepalived.conf"))
	if err != nil {
		return fmt.Errorf("labfleet: %w", err)
	}
	conf, err := lab.SetDefinitions(string(b), map[string]string{
		"SELF": lb.Host.Addr().String(), "PEER": peer.Addr().String(), "IFACE": "eth0",
		"VIP": f.VIP.String(), "VIP_PREFIX": "24",
		"LB_READY":    `"` + lb.Bin + " ready -admin " + lb.Admin.BaseURL + `"`,
		"LB_PROCESS":  lb.Bin + " serve",
		"NOTIFY":      filepath.Join(f.scripts, "lb-notify.sh"),
		"SCRIPT_USER": "nobody",
	})
	if err != nil {
		return fmt.Errorf("labfleet: %w", err)
	}
	if f.opts.NoTrackProcess {
		conf = regexp.MustCompile(`(?s)\n\s*track_process \{[^}]*\}`).ReplaceAllString(conf, "")
	}
	if err := os.WriteFile(lb.conf, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("labfleet: %w", err)
	}
	return nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("labfleet: random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// tail is the last 4 KiB of s.
func tail(s string) string {
	if len(s) > 4<<10 {
		return s[len(s)-4<<10:]
	}
	return s
}
