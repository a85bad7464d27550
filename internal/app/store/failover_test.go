package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"outrigger/internal/app/pgretry"
	"outrigger/internal/app/store"
	"outrigger/internal/pgtest"
)

// proxied is a migrated database on a private TCP cluster, with a Store whose connections
// go through a pgtest.Proxy (to lose replies or go silent) and an admin pool that does not.
type proxied struct {
	st    *store.Store
	px    *pgtest.Proxy
	admin *pgxpool.Pool
}

func newProxied(t *testing.T, budget time.Duration) proxied {
	t.Helper()
	cl := pgtest.TCPCluster(t, pgtest.ClusterOptions{})
	admin := pgtest.OpenPool(t, cl.DSN("postgres"), nil, store.Migrate)
	px := pgtest.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", cl.Port()))
	dsn := px.DSN(cl.DSN("postgres")) + "&connect_timeout=1"
	pool := pgtest.OpenPool(t, dsn, pgretry.ConfigurePool, nil)
	t.Cleanup(px.Heal) // before the pool closes: its connections must not be silent
	return proxied{st: store.New(pgretry.New(pool, pgretry.Options{Budget: budget})), px: px, admin: admin}
}

// loseOnce makes px lose the n-th reply (from 1) whose tag starts with each prefix given;
// the function it returns stops losing and fails the test unless every one was lost.
func loseOnce(t *testing.T, px *pgtest.Proxy, want map[string]int) (stop func()) {
	seen := map[string]int{}
	lost := 0
	px.LoseReplies(func(tag string) bool {
		for prefix, n := range want {
			if strings.HasPrefix(tag, prefix) {
				seen[prefix]++
				if seen[prefix] == n {
					lost++
					return true
				}
			}
		}
		return false
	})
	return func() {
		t.Helper()
		px.LoseReplies(nil) // under the proxy's lock: lost is safe to read after
		if lost != len(want) {
			t.Fatalf("lost %d replies, want %d (%v); seen %v", lost, len(want), want, seen)
		}
	}
}

// TestLostAcksLeaveOneCopy: the replies to an upload's writes are lost after the server
// committed them (the file's row, a chunk, the final update): each write is repeated on a
// new connection, and the database ends up with exactly one row per file and per chunk, and
// the file ready with its bytes.
func TestLostAcksLeaveOneCopy(t *testing.T) {
	ctx := t.Context()
	p := newProxied(t, 5*time.Second)
	alice := mustUser(t, p.st, "alice")
	data := randomBytes(t, 3*store.ChunkSize-7)
	// INSERT 1 is the file's row, INSERT 3 the second chunk; UPDATE 1 makes it ready
	// (the file is written in less than the 10s after which an upload touches its row).
	stop := loseOnce(t, p.px, map[string]int{"INSERT": 1, "UPDATE": 1})
	f, err := p.st.CreateFile(ctx, alice.ID, "f.bin", "application/octet-stream", bytes.NewReader(data))
	stop()
	if err != nil {
		t.Fatalf("CreateFile with lost acknowledgements: %v", err)
	}
	stop = loseOnce(t, p.px, map[string]int{"INSERT": 3})
	g, err := p.st.CreateFile(ctx, alice.ID, "g.bin", "application/octet-stream", bytes.NewReader(data))
	stop()
	if err != nil {
		t.Fatalf("CreateFile with a chunk's acknowledgement lost: %v", err)
	}
	for _, file := range []store.File{f, g} {
		if n := count(t, p.admin, "SELECT count(*) FROM files WHERE id = $1 AND state = 'ready'", file.ID); n != 1 {
			t.Errorf("file %s: %d ready rows, want 1", file.Name, n)
		}
		if n := count(t, p.admin, "SELECT count(*) FROM file_chunks WHERE file_id = $1", file.ID); n != 3 {
			t.Errorf("file %s: %d chunks, want 3", file.Name, n)
		}
		var out bytes.Buffer
		if _, err := p.st.CopyFileTo(ctx, &out, file); err != nil || !bytes.Equal(out.Bytes(), data) {
			t.Errorf("file %s reads back %d bytes (%v), want the %d uploaded", file.Name, out.Len(), err, len(data))
		}
	}
	if n := count(t, p.admin, "SELECT count(*) FROM files"); n != 2 {
		t.Errorf("%d files rows, want 2 (no orphan from a repeated insert)", n)
	}
}

// TestSignupLostAck: a signup whose commit was not acknowledged is repeated and succeeds
// (it finds its own row), rather than answering "username taken" to its own author; another
// signup for the name is still refused.
func TestSignupLostAck(t *testing.T) {
	ctx := t.Context()
	p := newProxied(t, 5*time.Second)
	stop := loseOnce(t, p.px, map[string]int{"SELECT": 1})
	u, err := p.st.CreateUser(ctx, "alice", []byte("$2a$10$hash-one"))
	stop()
	if err != nil {
		t.Fatalf("CreateUser with its acknowledgement lost: %v", err)
	}
	if n := count(t, p.admin, "SELECT count(*) FROM users WHERE username = 'alice'"); n != 1 || u.ID == 0 {
		t.Errorf("%d users named alice (id %d), want 1", n, u.ID)
	}
	if _, err := p.st.CreateUser(ctx, "alice", []byte("$2a$10$hash-two")); !errors.Is(err, store.ErrUsernameTaken) {
		t.Errorf("another signup for alice: %v, want ErrUsernameTaken", err)
	}
}

// TestLongUploadWithinBudget: a healthy upload whose chunk writes take longer in all than the
// budget (each is slow, none too slow) succeeds: the budget bounds the wait on the database
// for one chunk, not for the whole transfer; and so does a download of it.
func TestLongUploadWithinBudget(t *testing.T) {
	ctx := t.Context()
	st, pool := newStore(t)
	alice := mustUser(t, st, "alice")
	// Every chunk written costs the database 100 ms.
	if _, err := pool.Exec(ctx, `CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS
		'BEGIN PERFORM pg_sleep(0.1); RETURN NEW; END';
		CREATE TRIGGER slow BEFORE INSERT ON file_chunks FOR EACH ROW EXECUTE FUNCTION slow()`); err != nil {
		t.Fatal(err)
	}
	budget := 400 * time.Millisecond
	data := randomBytes(t, 8*store.ChunkSize)
	start := time.Now()
	f, err := st.CreateFile(pgretry.WithBudget(ctx, budget), alice.ID, "long.bin", "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("upload of 8 chunks of 100 ms each with a budget of %v: %v", budget, err)
	}
	if took := time.Since(start); took < 800*time.Millisecond {
		t.Fatalf("the upload took %v: the chunks were not slow, the test proves nothing", took)
	}
	var out bytes.Buffer
	if _, err := st.CopyFileTo(pgretry.WithBudget(ctx, budget), &out, f); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Errorf("download: %v", err)
	}
}

// TestUploadPastBudgetLeavesNothing: every chunk write fails (its reply lost) until the
// budget is spent: CreateFile gives up with an UnavailableError, in about the budget, and
// deletes the file's row and the chunks that did commit.
func TestUploadPastBudgetLeavesNothing(t *testing.T) {
	ctx := t.Context()
	budget := time.Second
	p := newProxied(t, budget)
	alice := mustUser(t, p.st, "alice")
	var mu sync.Mutex
	inserts := 0
	p.px.LoseReplies(func(tag string) bool {
		mu.Lock()
		defer mu.Unlock()
		inserts += boolInt(strings.HasPrefix(tag, "INSERT"))
		return strings.HasPrefix(tag, "INSERT") && inserts > 1 // all but the file's row
	})
	start := time.Now()
	_, err := p.st.CreateFile(pgretry.WithBudget(ctx, budget), alice.ID, "f", "text/plain", bytes.NewReader(randomBytes(t, 2*store.ChunkSize)))
	took := time.Since(start)
	p.px.LoseReplies(nil)
	var ue *pgretry.UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("CreateFile: %v, want an *UnavailableError", err)
	}
	if took > budget+time.Second+time.Second {
		t.Errorf("gave up after %v, want about %v (plus the cleanup)", took, budget)
	}
	if n := count(t, p.admin, "SELECT count(*) FROM files"); n != 0 {
		t.Errorf("%d files rows left, want 0", n)
	}
	if n := count(t, p.admin, "SELECT count(*) FROM file_chunks"); n != 0 {
		t.Errorf("%d chunks left, want 0", n)
	}
	t.Logf("upload gave up after %v, %d attempts", took, ue.Attempts)
}

// TestUploadOnVanishedHostIsSwept: the database host goes silent mid-upload: CreateFile
// gives up within the budget (plus the time it tries to clean up), the unfinished file is
// never listed nor readable, and once the network heals DeleteFailedUploads deletes it and
// its chunks (statements held by the silent network may have finished it meanwhile).
func TestUploadOnVanishedHostIsSwept(t *testing.T) {
	ctx := t.Context()
	budget := time.Second
	p := newProxied(t, budget)
	alice := mustUser(t, p.st, "alice")
	body := &blackholeAfter{r: bytes.NewReader(randomBytes(t, 3*store.ChunkSize)), after: store.ChunkSize + 10, px: p.px}
	start := time.Now()
	_, err := p.st.CreateFile(pgretry.WithBudget(ctx, budget), alice.ID, "f", "text/plain", body)
	took := time.Since(start)
	if err == nil {
		t.Fatal("CreateFile on a silent host succeeded")
	}
	if took > budget+500*time.Millisecond+time.Second {
		t.Errorf("gave up after %v, want at most the budget plus the cleanup's 500ms", took)
	}
	p.px.Heal()
	var id string
	if err := p.admin.QueryRow(ctx, "SELECT coalesce(max(id::text), '') FROM files").Scan(&id); err != nil {
		t.Fatal(err)
	}
	if id == "" {
		t.Fatal("the failed upload's row is gone already: the test proves nothing")
	}
	if files, err := p.st.ListFiles(ctx, alice.ID, "", 100); err != nil || len(files) != 0 {
		t.Errorf("listing after the failed upload: %v, %v; want none", files, err)
	}
	if _, err := p.st.GetFile(ctx, alice.ID, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetFile of the unfinished upload: %v, want ErrNotFound", err)
	}
	if n, left, err := p.st.DeleteFailedUploads(ctx); n != 1 || left != 0 || err != nil {
		t.Errorf("DeleteFailedUploads: %d deleted, %d left, %v; want the failed upload deleted", n, left, err)
	}
	if n := count(t, p.admin, "SELECT count(*) FROM files") + count(t, p.admin, "SELECT count(*) FROM file_chunks"); n != 0 {
		t.Errorf("%d rows left, want 0", n)
	}
}

// blackholeAfter reads r and blackholes px once after bytes were read.
type blackholeAfter struct {
	r     *bytes.Reader
	after int
	read  int
	px    *pgtest.Proxy
}

func (b *blackholeAfter) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if b.read < b.after && b.read+n >= b.after {
		b.px.Blackhole()
	}
	b.read += n
	return n, err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestMigrationInterrupted: a migration whose connection is killed, or whose server
// crashes, half-way through is not half-applied: none of the batch is there, nor recorded,
// and the next attempt applies it whole.
func TestMigrationInterrupted(t *testing.T) {
	slow := []store.Migration{
		{Version: 1, Name: "first", SQL: "CREATE TABLE mig_a (n int)"},
		{Version: 2, Name: "slow", SQL: "CREATE TABLE mig_b (n int); SELECT pg_sleep(60); CREATE TABLE mig_c (n int)"},
	}
	fast := []store.Migration{slow[0], {Version: 2, Name: "slow", SQL: "CREATE TABLE mig_b (n int); CREATE TABLE mig_c (n int)"}}
	for _, tc := range []struct {
		name      string
		interrupt func(t *testing.T, cl *pgtest.Cluster, admin *pgxpool.Pool, pid int)
	}{
		{"connection terminated", func(t *testing.T, _ *pgtest.Cluster, admin *pgxpool.Pool, pid int) {
			if _, err := admin.Exec(t.Context(), "SELECT pg_terminate_backend($1)", pid); err != nil {
				t.Fatal(err)
			}
		}},
		{"server killed", func(t *testing.T, cl *pgtest.Cluster, admin *pgxpool.Pool, _ int) {
			if err := cl.Kill(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := cl.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			admin.Reset() // its connections died with the server
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			cl := pgtest.NewCluster(t, pgtest.ClusterOptions{})
			pool := pgtest.OpenPool(t, cl.DSN("postgres"), nil, nil)
			admin := pgtest.OpenPool(t, cl.DSN("postgres"), nil, nil)
			done := make(chan error, 1)
			go func() { done <- store.MigrateThese(ctx, pool, slow) }()
			var pid int
			waitFor(t, "the migration to reach pg_sleep", func() bool {
				err := admin.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()").Scan(&pid)
				return err == nil
			})
			tc.interrupt(t, cl, admin, pid)
			err := <-done
			if err == nil {
				t.Fatal("the interrupted migration reported success")
			}
			if !pgretry.Transient(err) {
				t.Errorf("interrupted migration: %v is not transient (the app would not say it retries a passing failure)", err)
			}
			for _, table := range []string{"mig_a", "mig_b", "mig_c", "schema_migrations"} {
				if n := count(t, admin, "SELECT count(*) FROM pg_tables WHERE tablename = $1", table); n != 0 {
					t.Errorf("table %s exists after the interrupted migration: half-applied", table)
				}
			}
			if err := store.MigrateThese(ctx, pool, fast); err != nil {
				t.Fatalf("the next attempt: %v", err)
			}
			if n := count(t, admin, "SELECT count(*) FROM pg_tables WHERE tablename IN ('mig_a', 'mig_b', 'mig_c')"); n != 3 {
				t.Errorf("after the next attempt: %d of 3 tables", n)
			}
			if n := count(t, admin, "SELECT count(*) FROM schema_migrations"); n != 2 {
				t.Errorf("after the next attempt: %d migrations recorded, want 2", n)
			}
		})
	}
}
