package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"outrigger/internal/fleet"
)

// restartName is the name of the copy of this program that restarts an app server.
const restartName = "restart-app"

// run is the whole program: `demo [flags]` runs the fleet; `demo restart SOCKET VERSION`
// is the CMD that `lb rollout` runs to restart one app server with another version.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if filepath.Base(args[0]) == restartName { // the copy that lb rollout runs
		return fleet.RestartCommand(ctx, args[1:], getenv, stdout)
	}
	if len(args) > 1 && args[1] == "restart" {
		return fleet.RestartCommand(ctx, args[2:], getenv, stdout)
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8443", "lb's HTTPS address")
	admin := fs.String("admin", "127.0.0.1:9000", "lb's admin API address")
	apps := fs.Int("apps", 3, "number of app servers")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "outrigger-demo-")
	if err != nil {
		return fmt.Errorf("demo dir: %w", err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bin")

	fmt.Fprintln(stdout, "building app (v1 and v2) and lb ...")
	builds := []struct{ out, pkg, version string }{
		{filepath.Join(bin, "app-v1"), "./cmd/app", "demo-v1"},
		{filepath.Join(bin, "app-v2"), "./cmd/app", "demo-v2"},
		{filepath.Join(bin, "lb"), "./cmd/lb", "demo"},
	}
	for _, b := range builds {
		if err := goBuild(ctx, b.out, b.pkg, b.version, stderr); err != nil {
			return err
		}
	}
	// `lb rollout` runs this program's restart subcommand; keep a copy of it beside
	// the binaries (`go run` removes its own build when the demo ends).
	restart := filepath.Join(bin, restartName)
	if err := copySelf(restart); err != nil {
		return err
	}

	opts := fleet.Options{
		AppBinary:     builds[0].out,
		LBBinary:      builds[2].out,
		AppVersions:   map[string]string{"demo-v1": builds[0].out, "demo-v2": builds[1].out},
		Apps:          *apps,
		DatabaseURL:   getenv("DATABASE_URL"),
		Dir:           filepath.Join(dir, "run"),
		ShutdownDelay: 2 * time.Second,
		LB: fleet.LBOptions{
			Listen:         *listen,
			AdminListen:    *admin,
			HealthInterval: 2 * time.Second,
			HealthTimeout:  time.Second,
			PerTryTimeout:  2 * time.Second,
			DrainTimeout:   30 * time.Second,
		},
	}
	if err := os.Mkdir(opts.Dir, 0o700); err != nil {
		return fmt.Errorf("demo dir: %w", err)
	}
	if opts.DatabaseURL == "" {
		fmt.Fprintln(stdout, "starting a throwaway PostgreSQL, the app servers and lb ...")
	} else {
		fmt.Fprintln(stdout, "using DATABASE_URL; starting the app servers and lb ...")
	}
	f, err := fleet.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(stdout, "\nstopping lb, the app servers and PostgreSQL ...")
		if cerr := f.Close(); cerr != nil {
			fmt.Fprintln(stderr, "demo: stop:", cerr)
			return
		}
		fmt.Fprintln(stdout, "stopped; nothing of the demo is left running.")
	}()
	printWhere(stdout, f, bin, restart)

	// Until Ctrl-C, or until lb itself exits.
	lbErr := f.LB().Wait(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("lb exited (%v); its log: %s", lbErr, f.LB().Log().Path())
}

// printWhere tells the operator where everything is and what to try.
func printWhere(w io.Writer, f *fleet.Fleet, bin, restart string) {
	url := strings.Replace(f.URL(), "127.0.0.1", "localhost", 1)
	fmt.Fprintf(w, "\nOutrigger demo is running. Ctrl-C stops everything.\n\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  lb (HTTPS, self-signed)\t%s\tpid %d\tlog %s\n", url, f.LB().Pid(), f.LB().Log().Path())
	fmt.Fprintf(tw, "  lb admin API\t%s\ttoken file %s\n", f.AdminURL(), f.TokenFile())
	fmt.Fprintf(tw, "  lb config\t%s\t\n", f.ConfigFile())
	for i, p := range f.Apps() {
		fmt.Fprintf(tw, "  %s\t%s\tpid %d\tlog %s\n", p.Name(), f.AppURL(i), p.Pid(), p.Log().Path())
	}
	_ = tw.Flush()
	if c := f.Cluster(); c != nil {
		fmt.Fprintf(w, "  PostgreSQL (throwaway): %s\n", f.DatabaseURL())
	} else {
		fmt.Fprintf(w, "  PostgreSQL: $DATABASE_URL\n")
	}
	lb := filepath.Join(bin, "lb")
	admin := fmt.Sprintf("-admin %s -token-file %s", f.AdminURL(), f.TokenFile())
	fmt.Fprintf(w, `
Try it:
  curl --cacert %[1]s %[2]s/healthz
  open %[2]s/ in a browser (accept the self-signed certificate), sign up, upload a file

See the backends:
  %[3]s backends %[4]s

Kill a server (lb keeps answering; nothing restarts it until the next rollout):
  kill -9 %[5]d          # or freeze it: kill -STOP %[5]d, later kill -CONT %[5]d

Roll out a new version (every app server restarted, one at a time, with app demo-v2):
  %[3]s rollout %[4]s -expect-version demo-v2 -- %[6]s %[7]s demo-v2
and back:
  %[3]s rollout %[4]s -expect-version demo-v1 -- %[6]s %[7]s demo-v1
(%[6]s restarts the app server named by $LB_BACKEND_NAME, which lb rollout sets; it also
brings back a killed one.)
`, f.CertFile(), url, lb, admin, f.App(0).Pid(), restart, f.ControlSocket())
}

// goBuild builds pkg (relative to the module root) into out with main.version set.
func goBuild(ctx context.Context, out, pkg, version string, stderr io.Writer) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "-ldflags", "-X main.version="+version, pkg)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}

// moduleRoot finds the directory of the outrigger module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the demo from inside the outrigger module (make demo)")
	}
	return filepath.Dir(mod), nil
}

// copySelf copies this program's binary to path.
func copySelf(path string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	in, err := os.Open(self)
	if err != nil {
		return fmt.Errorf("copy own binary: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("copy own binary: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy own binary: %w", err)
	}
	return out.Close()
}
