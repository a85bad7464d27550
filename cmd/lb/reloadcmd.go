package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// runReload asks each running lb to re-read its config file through the admin
// API (POST /api/reload) and prints the outcome: the running lb checks the
// file with its own rules, so what it refuses is exactly what it would not
// run, and the answer is the reload's result, not merely "signal sent". No
// pid is needed (no pid file to go stale, no signal to the wrong process).
// With -config, the admin URL and token come from that file unless -admin,
// LB_ADMIN, -token-file or LB_ADMIN_TOKEN_FILE say otherwise: lb.service's
// ExecReload runs `lb reload -config /etc/lb/lb.yaml`.
func runReload(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var path string
	targets, _, err := adminCommandWith("reload", "", 0, args, getenv, stdout, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&path, "config", "", "lb's config file: the admin API and token to use when -admin/LB_ADMIN and\n"+
			"-token-file/LB_ADMIN_TOKEN_FILE are not given, and the file the running lb should be reading")
	}, func(af *adminFlags) error { return af.fromConfig(path, getenv) })
	if err != nil {
		return err
	}
	want := ""
	if path != "" {
		if abs, err := filepath.Abs(path); err == nil {
			want = abs
		}
	}
	refused := 0
	err = eachLB(targets, "reload", stderr, func(t target) error {
		res, err := t.client.Reload(ctx)
		if err != nil {
			return err
		}
		if want != "" && res.Config != want {
			fmt.Fprintf(stderr, "lb %s: warning: it reads %s, not %s\n", t.url, res.Config, want)
		}
		if !res.OK {
			refused++
			for _, line := range strings.Split(res.Error, "\n") {
				fmt.Fprintf(stderr, "%s: %s\n", res.Config, line)
			}
			return fmt.Errorf("reload of %s refused, running config kept (since %s)", res.Config,
				res.LastSuccess.Local().Format("2006-01-02 15:04:05"))
		}
		fmt.Fprintf(stdout, "%s: reloaded %s\n", t.url, res.Config)
		if len(res.RestartNeeded) > 0 {
			fmt.Fprintf(stdout, "%s: changed but not applied until lb restarts: %s\n", t.url, strings.Join(res.RestartNeeded, ", "))
		}
		return nil
	})
	if err != nil && refused == len(targets) {
		return &usageError{err: err} // every lb refused the file: fix it (exit 2, as validate)
	}
	return err
}

// fromConfig fills in the admin URL and token file from lb's config file
// where neither a flag nor the environment gave them; an https admin
// listener's own certificate is trusted, as lb ready does.
func (f *adminFlags) fromConfig(path string, getenv func(string) string) error {
	if path == "" {
		return nil
	}
	needURL := len(f.admins) == 0 && strings.TrimSpace(getenv("LB_ADMIN")) == ""
	needToken := f.tokenFile == "" && getenv("LB_ADMIN_TOKEN_FILE") == ""
	if !needURL && !needToken {
		return nil
	}
	a, err := readAdminBlock(path)
	if err != nil {
		return usagef("%v: cannot find the admin API in it: pass -admin and -token-file", err)
	}
	if needURL {
		u, err := adminURLOf(a)
		if err != nil {
			return usagef("config %s: %v", path, err)
		}
		f.admins = adminList{u}
		if a.CertFile != "" && f.caFile == "" {
			f.caFile = a.CertFile
		}
	}
	if needToken {
		f.tokenFile = a.TokenFile
	}
	return nil
}
