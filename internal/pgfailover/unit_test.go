package pgfailover

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestTimeoutsValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Timeouts)
		wantErr string
	}{
		{"tuned", func(*Timeouts) {}, ""},
		{"pg_auto_failover defaults", func(x *Timeouts) { *x = Defaults }, ""},
		{"the lab's", func(x *Timeouts) { *x = Fast }, ""},
		{"demote equal to partition", func(x *Timeouts) { x.PrimaryDemote = x.NetworkPartition }, "two primaries"},
		{"demote within the margin", func(x *Timeouts) { x.PrimaryDemote = x.NetworkPartition + time.Second }, "two primaries"},
		{"partition not whole seconds", func(x *Timeouts) { x.NetworkPartition = 4500 * time.Millisecond }, "whole seconds"},
		{"zero period", func(x *Timeouts) { x.HealthCheckPeriod = 0 }, "HealthCheckPeriod"},
		{"negative retries", func(x *Timeouts) { x.HealthCheckMaxRetries = -1 }, "HealthCheckMaxRetries"},
		{"sub-millisecond", func(x *Timeouts) { x.HealthCheckTimeout = 1500 * time.Microsecond }, "whole milliseconds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := Tuned
			tc.mod(&x)
			err := x.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestTunedSQLAndKeeperArgs(t *testing.T) {
	sql := strings.Join(Tuned.MonitorSQL(), "\n")
	for _, want := range []string{
		"ALTER SYSTEM SET pgautofailover.health_check_period = 1000;",
		"ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 5000;",
		"ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 8000;",
		"SELECT pg_reload_conf();",
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("MonitorSQL lacks %q:\n%s", want, sql)
		}
	}
	got := strings.Join(Tuned.KeeperArgs("/d"), " ")
	if want := "config set --pgdata /d timeout.network_partition_timeout 5"; got != want {
		t.Errorf("KeeperArgs = %q, want %q", got, want)
	}
}

func TestAppURI(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
		user              *url.Userinfo
	}{
		{
			in:   "postgres://127.0.0.1:5501,127.0.0.1:5502/app?target_session_attrs=read-write&sslmode=prefer",
			want: "postgres://127.0.0.1:5501,127.0.0.1:5502/app?connect_timeout=2&sslmode=prefer&target_session_attrs=read-write",
		},
		{
			in:   "postgres://db-1:5432,db-2:5432/outrigger?target_session_attrs=read-write&sslmode=verify-full&sslrootcert=/etc/app/db-ca.pem",
			user: url.UserPassword("app", "s3cret/!"),
			want: "postgres://app:s3cret%2F%21@db-1:5432,db-2:5432/outrigger?connect_timeout=2&sslmode=verify-full&sslrootcert=%2Fetc%2Fapp%2Fdb-ca.pem&target_session_attrs=read-write",
		},
		{in: "postgres://a:1,b:2/app?target_session_attrs=read-write&connect_timeout=5", want: "postgres://a:1,b:2/app?connect_timeout=5&target_session_attrs=read-write"},
		{in: "postgres://a:1,b:2/app?sslmode=prefer", wantErr: "target_session_attrs"},
		{in: "   Type |  Name | Connection String", wantErr: "not a postgres:// URI"},
	}
	for _, tc := range tests {
		got, err := AppURI(tc.in, tc.user)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("AppURI(%q) = %q, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("AppURI(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	good := func() Options {
		return Options{
			Monitor: NodeSpec{Name: "monitor", Addr: "198.18.0.10", Port: 6000},
			Nodes: []NodeSpec{
				{Name: "db-1", Addr: "198.18.0.11", Port: 6001},
				{Name: "db-2", Addr: "198.18.0.12", Port: 6002, CandidatePriority: 50},
			},
			Network: "198.18.0.0/24",
		}
	}
	tests := []struct {
		name    string
		mod     func(*Options)
		wantErr string
	}{
		{"good", func(*Options) {}, ""},
		{"one data node", func(o *Options) { o.Nodes = o.Nodes[:1] }, "at least 2"},
		{"same port on two hosts", func(o *Options) { o.Nodes[1].Port = 6001 }, "ports must differ even across hosts"},
		{"same name", func(o *Options) { o.Nodes[1].Name = "db-1" }, "is taken"},
		{"bad name", func(o *Options) { o.Nodes[0].Name = "DB 1" }, "name"},
		{"host name for addr", func(o *Options) { o.Nodes[0].Addr = "db-1" }, "IP address"},
		{"bad network", func(o *Options) { o.Network = "198.18.0.0" }, "CIDR"},
		{"priority", func(o *Options) { o.Nodes[0].CandidatePriority = 101 }, "candidate priority"},
		{"unsafe timeouts", func(o *Options) { x := Tuned; x.PrimaryDemote = 5 * time.Second; o.Timeouts = &x }, "two primaries"},
		{"setting name", func(o *Options) { o.Settings = map[string]string{"archive_mode = on #": "x"} }, "setting"},
		{"secure", func(o *Options) {
			o.Secure = &Security{MonitorPassword: "0123456789abcdef0123", ReplicationPassword: "ZmVkY2JhOTg3NjU0MzIx+/="}
		}, ""},
		{"password with a space", func(o *Options) {
			o.Secure = &Security{MonitorPassword: "0123456789abcdef0123", ReplicationPassword: "replication secret"}
		}, "does not quote it"},
		{"short password", func(o *Options) {
			o.Secure = &Security{MonitorPassword: "short", ReplicationPassword: "0123456789abcdef0123"}
		}, "monitor password"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := good()
			tc.mod(&o)
			err := o.validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestStatePrimaryAndStable(t *testing.T) {
	n := func(name, reported, assigned string) NodeState {
		return NodeState{Name: name, Reported: reported, Assigned: assigned}
	}
	tests := []struct {
		name        string
		s           State
		wantPrimary string
		wantStable  bool
	}{
		{"at rest", State{n("a", "primary", "primary"), n("b", "secondary", "secondary")}, "a", true},
		{"secondary down", State{n("a", "wait_primary", "wait_primary"), n("b", "catchingup", "catchingup")}, "a", false},
		{"alone", State{n("a", "single", "single")}, "a", false},
		{"failing over", State{n("a", "primary", "demote_timeout"), n("b", "secondary", "prepare_promotion")}, "", false},
		{"switchover done, rejoining", State{n("a", "secondary", "secondary"), n("b", "wait_primary", "primary")}, "", false},
		{"two primaries reported", State{n("a", "primary", "primary"), n("b", "primary", "primary")}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := tc.s.Primary()
			if ok != (tc.wantPrimary != "") || p.Name != tc.wantPrimary {
				t.Errorf("Primary() = %q, %v; want %q", p.Name, ok, tc.wantPrimary)
			}
			if got := tc.s.Stable(); got != tc.wantStable {
				t.Errorf("Stable() = %v, want %v (%s)", got, tc.wantStable, tc.s)
			}
		})
	}
}
