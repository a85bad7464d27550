package pgfailover

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
)

// Packages are the Debian packages that provide pg_autoctl and the monitor's extension.
const Packages = "postgresql-15-auto-failover pg-auto-failover-cli"

// ErrNoAutoctl means pg_autoctl, or a PostgreSQL with the pgautofailover extension, is
// not installed.
var ErrNoAutoctl = errors.New("pgfailover: pg_autoctl or the pgautofailover extension is not installed: apt-get install -y " + Packages)

// Options configure Create.
type Options struct {
	// Monitor is the monitor node; Nodes are the data nodes (at least two), created in
	// this order: the first becomes the primary.
	Monitor NodeSpec
	Nodes   []NodeSpec
	// Dir holds the nodes that have no Dir of their own. Empty: a new /tmp/pgfailover-*
	// directory, removed by Close.
	Dir string
	// Database is the application database that pg_autoctl creates (--dbname); default
	// "app". CreateOwner makes a role its owner.
	Database string
	// Network, a CIDR such as "198.18.0.0/24", may reach the monitor as autoctl_node
	// (pg_autoctl trusts only the monitor's own network) when the nodes are on other
	// hosts. Empty: nothing is added.
	Network string
	// Timeouts are applied on the monitor and every keeper; nil means Tuned.
	Timeouts *Timeouts
	// Settings are PostgreSQL settings for every data node (archive_mode, for instance),
	// written to postgresql.auto.conf before the node first starts.
	Settings map[string]string
	// User runs every process when this process is root; default "postgres".
	User string
	// Secure sets the formation up as OPERATIONS.md does in production: TLS
	// (--ssl-self-signed) and scram-sha-256 passwords between the nodes, and no trust
	// records for TCP from loopback. Nil: --auth trust --no-ssl.
	Secure *Security
}

// Security holds the passwords of pg_auto_failover's roles in a Secure formation.
type Security struct {
	// MonitorPassword is autoctl_node's: the data nodes' keepers log in to the monitor.
	MonitorPassword string
	// ReplicationPassword is pgautofailover_replicator's: a standby streams from the
	// primary, and a rejoining node rewinds from it (pg_rewind), with it.
	ReplicationPassword string
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9_-]{1,63}$`)
	settingRE = regexp.MustCompile(`^[a-z_][a-z0-9_.]*$`)
	// passwordRE are passwords pg_autoctl can put in a connection string unquoted.
	passwordRE = regexp.MustCompile(`^[A-Za-z0-9._~+/=-]{16,}$`)
)

func (o *Options) validate() error {
	var errs []error
	if len(o.Nodes) < 2 {
		errs = append(errs, fmt.Errorf("%d data node(s): want at least 2", len(o.Nodes)))
	}
	names, ports := map[string]bool{}, map[int]bool{}
	for i, s := range append([]NodeSpec{o.Monitor}, o.Nodes...) {
		what := "monitor"
		if i > 0 {
			what = fmt.Sprintf("data node %d", i)
		}
		if !nameRE.MatchString(s.Name) {
			errs = append(errs, fmt.Errorf("%s: name %q: want [a-z0-9_-]{1,63}", what, s.Name))
		} else if names[s.Name] {
			errs = append(errs, fmt.Errorf("%s: name %q is taken", what, s.Name))
		}
		names[s.Name] = true
		if _, err := netip.ParseAddr(s.Addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: addr %q: want an IP address", what, s.Addr))
		}
		if s.Port <= 0 || s.Port > 65535 {
			errs = append(errs, fmt.Errorf("%s: port %d: want 1-65535", what, s.Port))
		} else if ports[s.Port] {
			errs = append(errs, fmt.Errorf("%s: port %d is taken: every node's unix socket is in %s, so ports must differ even across hosts", what, s.Port, SocketDir))
		}
		ports[s.Port] = true
		if s.CandidatePriority < 0 || s.CandidatePriority > 100 {
			errs = append(errs, fmt.Errorf("%s: candidate priority %d: want 0-100", what, s.CandidatePriority))
		}
	}
	if o.Secure != nil {
		for what, pw := range map[string]string{"monitor": o.Secure.MonitorPassword, "replication": o.Secure.ReplicationPassword} {
			if !passwordRE.MatchString(pw) {
				// pg_autoctl 2.0 writes the replication password into primary_conninfo
				// unquoted: a space, quote or backslash breaks replication.
				errs = append(errs, fmt.Errorf("secure: the %s password must be 16 or more of [A-Za-z0-9._~+/=-] (e.g. openssl rand -hex 24): pg_autoctl does not quote it", what))
			}
		}
	}
	if o.Network != "" {
		if _, err := netip.ParsePrefix(o.Network); err != nil {
			errs = append(errs, fmt.Errorf("network %q: want a CIDR", o.Network))
		}
	}
	if o.Timeouts != nil {
		if err := o.Timeouts.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("timeouts: %w", err))
		}
	}
	for k := range o.Settings {
		if !settingRE.MatchString(k) {
			errs = append(errs, fmt.Errorf("setting %q: not a PostgreSQL setting name", k))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pgfailover: %w", err)
	}
	return nil
}

// CheckTools reports ErrNoAutoctl unless pg_autoctl and a PostgreSQL server with the
// pgautofailover extension are installed; else it returns their paths.
func CheckTools() (autoctl, binDir string, err error) {
	autoctl, err = exec.LookPath("pg_autoctl")
	if err != nil {
		return "", "", ErrNoAutoctl
	}
	// The highest PostgreSQL that has both the server and the monitor's extension.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best := -1
	for _, d := range dirs {
		ver := filepath.Base(filepath.Dir(d))
		v, err := strconv.Atoi(ver)
		if err != nil || v <= best {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err != nil {
			continue
		}
		if _, err := os.Stat("/usr/share/postgresql/" + ver + "/extension/pgautofailover.control"); err != nil {
			continue
		}
		best, binDir = v, d
	}
	if binDir == "" {
		return "", "", ErrNoAutoctl
	}
	return autoctl, binDir, nil
}
