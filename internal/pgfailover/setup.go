package pgfailover

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// rewindHBA are the pg_hba.conf records a data node needs so that the others can pg_rewind
// from it when they rejoin after a failover. pg_autoctl 2.0 lets pgautofailover_replicator
// into the application database only, but runs pg_rewind against the database postgres:
// without these records every rejoin fails its rewind and falls back to copying the whole
// database (pg_basebackup).
func (f *Formation) rewindHBA() []string {
	typ, method := "host", "trust"
	if f.opts.Secure != nil {
		typ, method = "hostssl", "scram-sha-256"
	}
	var lines []string
	for _, n := range f.nodes {
		line := fmt.Sprintf("%s postgres pgautofailover_replicator %s %s", typ, hostCIDR(n.Addr()), method)
		if !slices.Contains(lines, line) {
			lines = append(lines, line)
		}
	}
	return lines
}

// hostCIDR is addr as a single-host CIDR.
func hostCIDR(addr string) string {
	a := netip.MustParseAddr(addr)
	return netip.PrefixFrom(a, a.BitLen()).String()
}

// securityArgs are pg_autoctl create's authentication and TLS flags.
func (f *Formation) securityArgs() []string {
	if f.opts.Secure != nil {
		return []string{"--auth", "scram-sha-256", "--ssl-self-signed"}
	}
	return []string{"--auth", "trust", "--no-ssl"}
}

// loopbackTrust matches the records initdb writes for TCP from loopback ("host all all
// 127.0.0.1/32 trust" and the replication and ::1 ones), which would let any local user
// in as anyone, and would win over pg_auto_failover's password records on loopback.
var loopbackTrust = regexp.MustCompile(`(?m)^host\s+(all|replication)\s+all\s+(127\.0\.0\.1/32|::1/128)\s+trust\s*\n`)

// tightenHBA removes loopbackTrust's records from n's pg_hba.conf in a Secure formation,
// as deploy/postgres/tighten-hba.sh does; that script also turns the unix-socket records
// into peer, which this package cannot: its own process (root) logs in as postgres over the
// socket (SocketDSN).
func (f *Formation) tightenHBA(n *Node) error {
	if f.opts.Secure == nil {
		return nil
	}
	p := filepath.Join(n.PGData(), "pg_hba.conf")
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name(), err)
	}
	if err := os.WriteFile(p, loopbackTrust.ReplaceAll(b, nil), 0o600); err != nil {
		return fmt.Errorf("node %s: %w", n.Name(), err)
	}
	return nil
}

func (f *Formation) makeDir() error {
	if f.opts.Dir == "" {
		dir, err := os.MkdirTemp("/tmp", dirPrefix)
		if err != nil {
			return fmt.Errorf("pgfailover: %w", err)
		}
		f.dir, f.ownDir = dir, true
	} else {
		dir, err := filepath.Abs(f.opts.Dir)
		if err != nil {
			return fmt.Errorf("pgfailover: dir %q: %w", f.opts.Dir, err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("pgfailover: %w", err)
		}
		f.dir = dir
	}
	if err := os.Chmod(f.dir, 0o755); err != nil { // the nodes' user must reach its subdirectories
		return fmt.Errorf("pgfailover: %w", err)
	}
	lock, err := takeLock(f.dir)
	if err != nil {
		return err
	}
	f.lock = lock
	return nil
}

func (f *Formation) chown(path string) error {
	if f.cred == nil {
		return nil
	}
	return os.Chown(path, int(f.cred.Uid), int(f.cred.Gid))
}

// ensureSocketDir creates SocketDir, as Debian's postgresql-common does at boot, if a
// machine without the packaged server lacks it.
func (f *Formation) ensureSocketDir() error {
	if _, err := os.Stat(SocketDir); err == nil {
		return nil
	}
	if err := os.MkdirAll(SocketDir, 0o2775); err != nil {
		return fmt.Errorf("pgfailover: socket directory: %w", err)
	}
	return f.chown(SocketDir)
}

// credential is the uid and primary gid of user name, with no supplementary groups.
func credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("user %s (PostgreSQL refuses to run as root): %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user %s: uid %q gid %q", name, u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// appendLines appends each line that path does not hold yet, keeping its owner and mode.
func appendLines(path string, lines []string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	var add strings.Builder
	if len(b) > 0 && b[len(b)-1] != '\n' {
		add.WriteByte('\n')
	}
	for _, l := range lines {
		if !have[strings.TrimSpace(l)] {
			add.WriteString(l + "\n")
		}
	}
	if strings.TrimSpace(add.String()) == "" {
		return nil
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := fh.WriteString(add.String()); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// writeSettings appends settings to pgdata's postgresql.auto.conf, which PostgreSQL reads
// last (ALTER SYSTEM's file; pg_basebackup copies it to a new standby).
func writeSettings(pgdata string, settings map[string]string) error {
	if len(settings) == 0 {
		return nil
	}
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		lines = append(lines, fmt.Sprintf("%s = '%s'", k, strings.ReplaceAll(settings[k], "'", "''")))
	}
	return appendLines(filepath.Join(pgdata, "postgresql.auto.conf"), lines)
}
