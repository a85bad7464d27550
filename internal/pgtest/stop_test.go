package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestKillAndStopImmediate: a cluster crashed with SIGKILL, or stopped as by pg_ctl stop -m
// immediate, comes back on the same data with what was committed.
func TestKillAndStopImmediate(t *testing.T) {
	ctx := t.Context()
	c := NewCluster(t, ClusterOptions{Settings: []string{"synchronous_commit=on"}})
	dsn := c.DSN("postgres")
	mustExec(t, dsn, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)")
	for _, stop := range []struct {
		name string
		f    func(context.Context) error
	}{{"kill -9", c.Kill}, {"stop -m immediate", c.StopImmediate}} {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := stop.f(ctx); err != nil {
			t.Fatalf("%s: %v", stop.name, err)
		}
		if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
			t.Errorf("%s: a session survived", stop.name)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatalf("start after %s: %v", stop.name, err)
		}
		if n := scalar[int](t, dsn, "SELECT count(*) FROM kept"); n != 1 {
			t.Errorf("after %s: %d rows, want 1", stop.name, n)
		}
	}
}

// TestStandbyPromote: a standby made by StartStandby replicates synchronously, refuses
// writes, and takes them once promoted, with every commit of its primary.
func TestStandbyPromote(t *testing.T) {
	ctx := t.Context()
	primary := NewCluster(t, ClusterOptions{Port: FreePort(t),
		Settings: []string{"synchronous_standby_names=*", "synchronous_commit=on"}})
	standby, err := StartStandby(ctx, primary, ClusterOptions{Port: FreePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { standby.Close() })
	mustExec(t, primary.DSN("postgres"), "CREATE TABLE r (n int); INSERT INTO r VALUES (1), (2)")
	if n := scalar[int](t, standby.DSN("postgres"), "SELECT count(*) FROM r"); n != 2 {
		t.Errorf("standby has %d rows, want 2 (synchronous replication)", n)
	}
	if err := execErr(ctx, standby.DSN("postgres"), "INSERT INTO r VALUES (3)"); err == nil {
		t.Error("the standby took a write")
	}
	if err := primary.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, standby.DSN("postgres"), "INSERT INTO r VALUES (3)")
	if n := scalar[int](t, standby.DSN("postgres"), "SELECT count(*) FROM r"); n != 3 {
		t.Errorf("promoted standby has %d rows, want 3", n)
	}
}

// TestProxy: the proxy forwards, goes silent when blackholed (a statement gets no answer and
// no reset), forwards again when healed, and loses the replies it is asked to lose after
// the server committed them.
func TestProxy(t *testing.T) {
	ctx := t.Context()
	c := TCPCluster(t, ClusterOptions{})
	p := NewProxy(t, fmt.Sprintf("127.0.0.1:%d", c.Port()))
	dsn := p.DSN(c.DSN("postgres"))
	if !strings.Contains(dsn, p.Addr()) {
		t.Fatalf("proxy DSN %q does not name the proxy %s", dsn, p.Addr())
	}
	mustExec(t, dsn, "CREATE TABLE l (n int PRIMARY KEY)")

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	p.Blackhole()
	qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = conn.Exec(qctx, "SELECT 1")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("statement while blackholed: %v, want it to time out (silence)", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := pgx.Connect(cctx, dsn); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("connect while blackholed: %v, want it to time out", err)
	}
	cancel()
	p.Heal()
	mustExec(t, dsn, "INSERT INTO l VALUES (1)")

	var lost atomic.Int32
	p.LoseReplies(func(tag string) bool {
		if strings.HasPrefix(tag, "INSERT") && lost.Load() == 0 {
			lost.Add(1)
			return true
		}
		return false
	})
	err = execErr(ctx, dsn, "INSERT INTO l VALUES (2)")
	if err == nil || !(errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "closed")) {
		t.Errorf("insert whose reply is lost: %v, want the connection cut", err)
	}
	p.LoseReplies(nil)
	if n := scalar[int](t, dsn, "SELECT count(*) FROM l WHERE n = 2"); n != 1 {
		t.Errorf("the insert whose reply was lost: %d rows, want 1 (it committed)", n)
	}
}

func mustExec(t *testing.T, dsn, sql string) {
	t.Helper()
	if err := execErr(t.Context(), dsn, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func execErr(ctx context.Context, dsn, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return execSQL(ctx, dsn, sql)
}
