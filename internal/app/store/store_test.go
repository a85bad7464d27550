package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"outrigger/internal/app/pgretry"
	"outrigger/internal/app/store"
	"outrigger/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func newStore(t testing.TB) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.Pool(t, store.Migrate)
	return store.New(testDB(pool)), pool
}

// testDB is pool with a short retry budget, so that tests of outages are quick.
func testDB(pool *pgxpool.Pool) *pgretry.DB {
	return pgretry.New(pool, pgretry.Options{Budget: 2 * time.Second})
}

// waitFor polls cond every 10 ms until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func count(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func mustUser(t testing.TB, st *store.Store, name string) store.User {
	t.Helper()
	u, err := st.CreateUser(context.Background(), name, []byte("$2a$10$hash-of-"+name))
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", name, err)
	}
	return u
}

func TestMigrate(t *testing.T) {
	ctx := t.Context()
	pool := pgtest.Pool(t, nil)
	ms, err := store.Migrations()
	if err != nil || len(ms) == 0 {
		t.Fatalf("Migrations: got %d, %v; want some", len(ms), err)
	}
	// App servers starting together: each migration applied once.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- store.Migrate(ctx, pool) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate: %v", err)
		}
	}
	if got := count(t, pool, "SELECT count(*) FROM schema_migrations"); got != len(ms) {
		t.Errorf("schema_migrations rows: got %d, want %d", got, len(ms))
	}
	for _, table := range []string{"users", "login_failures", "files", "file_chunks", "sessions"} {
		if got := count(t, pool, "SELECT count(*) FROM pg_tables WHERE tablename = $1", table); got != 1 {
			t.Errorf("table %s: got %d, want 1", table, got)
		}
	}
	// A newer app applied a version this binary does not know: still fine.
	if _, err := pool.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_the_future')"); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, pool); err != nil {
		t.Errorf("Migrate with a newer schema: %v", err)
	}
}

// holdMigrateLock takes the migration lock as another migrating app server
// would (in a transaction on its own connection); release gives it back.
func holdMigrateLock(t *testing.T, pool *pgxpool.Pool) (release func()) {
	t.Helper()
	ctx := t.Context()
	holder, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", store.MigrateLockKey); err != nil {
		t.Fatal(err)
	}
	return func() {
		tx.Rollback(ctx)
		holder.Release()
	}
}

func TestMigrateWaitsForLock(t *testing.T) {
	ctx := t.Context()
	pool := pgtest.Pool(t, nil)
	release := holdMigrateLock(t, pool)
	done := make(chan error, 1)
	go func() { done <- store.Migrate(ctx, pool) }()
	// Migrate must be waiting for the lock: its backend shows up as waiting on an advisory lock.
	waitFor(t, "Migrate to wait for the advisory lock", func() bool {
		select {
		case err := <-done:
			t.Fatalf("Migrate returned %v while the lock was held", err)
		default:
		}
		return count(t, pool, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())") > 0
	})
	release()
	if err := <-done; err != nil {
		t.Fatalf("Migrate after the lock was released: %v", err)
	}
	if got := count(t, pool, "SELECT count(*) FROM pg_tables WHERE tablename = 'users'"); got != 1 {
		t.Errorf("users table: got %d, want 1", got)
	}
}

// TestMigrateLockTimeout: a lock held past lock_timeout on every attempt makes
// Migrate give up with lock_not_available (55P03), applying nothing, instead
// of queueing behind the lock (and every query behind it) for ever.
func TestMigrateLockTimeout(t *testing.T) {
	pool := pgtest.Pool(t, nil)
	release := holdMigrateLock(t, pool)
	defer release()
	err := store.MigrateWithin(t.Context(), pool, 100*time.Millisecond, 2)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
		t.Fatalf("Migrate with the lock held: got %v, want a 55P03 lock_not_available error", err)
	}
	if got := count(t, pool, "SELECT count(*) FROM pg_tables WHERE tablename = 'users'"); got != 0 {
		t.Errorf("users table: got %d, want 0 (nothing applied)", got)
	}
}

func TestUsers(t *testing.T) {
	ctx := t.Context()
	st, _ := newStore(t)
	alice := mustUser(t, st, "alice")
	if alice.ID == 0 || alice.CreatedAt.IsZero() {
		t.Errorf("CreateUser: got %+v, want an id and created_at", alice)
	}
	if _, err := st.CreateUser(ctx, "alice", []byte("other")); !errors.Is(err, store.ErrUsernameTaken) {
		t.Errorf("duplicate CreateUser: got %v, want ErrUsernameTaken", err)
	}
	bob := mustUser(t, st, "bob")

	tests := []struct {
		name   string
		get    func() (store.User, error)
		want   store.User
		wantEr error
	}{
		{"by username", func() (store.User, error) { return st.UserByUsername(ctx, "alice") }, alice, nil},
		{"by id", func() (store.User, error) { return st.UserByID(ctx, bob.ID) }, bob, nil},
		{"unknown username", func() (store.User, error) { return st.UserByUsername(ctx, "carol") }, store.User{}, store.ErrNotFound},
		{"unknown id", func() (store.User, error) { return st.UserByID(ctx, bob.ID+100) }, store.User{}, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.get()
			if !errors.Is(err, tt.wantEr) {
				t.Fatalf("err: got %v, want %v", err, tt.wantEr)
			}
			if got.ID != tt.want.ID || got.Username != tt.want.Username ||
				!bytes.Equal(got.PasswordHash, tt.want.PasswordHash) || !got.CreatedAt.Equal(tt.want.CreatedAt) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLoginFailures(t *testing.T) {
	ctx := t.Context()
	st, pool := newStore(t)
	ip1 := netip.MustParseAddr("192.0.2.1")
	ip2 := netip.MustParseAddr("2001:db8::2")
	const window = 15 * time.Minute

	record := func(ip netip.Addr, user string, n int) {
		for range n {
			if err := st.RecordLoginFailure(ctx, ip, user); err != nil {
				t.Fatal(err)
			}
		}
	}
	record(ip1, "alice", 3)
	record(ip1, "bob", 2)
	record(ip2, "alice", 1)
	record(netip.MustParseAddr("::ffff:192.0.2.1"), "carol", 1) // IPv4-mapped counts as ip1
	// Old failures fall outside the window.
	if _, err := pool.Exec(ctx, `INSERT INTO login_failures (client_ip, username, at)
		SELECT '192.0.2.1', 'alice', now() - interval '16 minutes' FROM generate_series(1, 20)`); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		ip             netip.Addr
		user           string
		byIP, byUser   int
		blockedLimit3  bool
		blockedLimit10 bool
	}{
		{ip1, "alice", 6, 4, true, false},
		{ip2, "bob", 1, 2, false, false},
		{ip2, "alice", 1, 4, true, false},
		{netip.MustParseAddr("198.51.100.7"), "dave", 0, 0, false, false},
		{netip.Addr{}, "bob", 0, 2, false, false},
	}
	for _, tt := range tests {
		byIP, byUser, err := st.CountLoginFailures(ctx, tt.ip, tt.user, window)
		if err != nil {
			t.Fatal(err)
		}
		if byIP != tt.byIP || byUser != tt.byUser {
			t.Errorf("CountLoginFailures(%v, %q): got %d, %d, want %d, %d", tt.ip, tt.user, byIP, byUser, tt.byIP, tt.byUser)
		}
		for limit, want := range map[int]bool{3: tt.blockedLimit3, 10: tt.blockedLimit10} {
			wait, err := st.LoginBlocked(ctx, tt.ip, tt.user, limit, window)
			if err != nil {
				t.Fatal(err)
			}
			if got := wait > 0; got != want {
				t.Errorf("LoginBlocked(%v, %q, %d): got %v, want blocked=%v", tt.ip, tt.user, limit, wait, want)
			}
			if wait > window || (want && wait < window-time.Minute) {
				t.Errorf("LoginBlocked(%v, %q, %d): got %v, want about %v", tt.ip, tt.user, limit, wait, window)
			}
		}
	}

	if err := st.ClearLoginFailures(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, byUser, _ := st.CountLoginFailures(ctx, ip1, "alice", window); byUser != 0 {
		t.Errorf("after ClearLoginFailures: got %d failures for alice, want 0", byUser)
	}
	if byIP, _, _ := st.CountLoginFailures(ctx, ip1, "x", window); byIP != 3 {
		t.Errorf("after ClearLoginFailures: got %d failures for ip1, want 3 (bob's and carol's)", byIP)
	}
	record(ip1, "erin", 1)
	if _, err := pool.Exec(ctx, "UPDATE login_failures SET at = now() - interval '2 days' WHERE username = 'bob'"); err != nil {
		t.Fatal(err)
	}
	n, err := st.PruneLoginFailures(ctx, 24*time.Hour)
	if err != nil || n != 2 {
		t.Errorf("PruneLoginFailures: got %d, %v, want 2", n, err)
	}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestFileRoundTrip(t *testing.T) {
	ctx := t.Context()
	st, pool := newStore(t)
	owner := mustUser(t, st, "alice")
	sizes := []int{0, 1, store.ChunkSize - 1, store.ChunkSize, store.ChunkSize + 1, 4*store.ChunkSize + 12345}
	for _, size := range sizes {
		data := randomBytes(t, size)
		sum := sha256.Sum256(data)
		f, err := st.CreateFile(ctx, owner.ID, "a.bin", "application/octet-stream", bytes.NewReader(data))
		if err != nil {
			t.Fatalf("CreateFile(%d bytes): %v", size, err)
		}
		if f.Size != int64(size) || f.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("CreateFile(%d bytes): got size %d sha256 %s, want %d %x", size, f.Size, f.SHA256, size, sum)
		}
		wantChunks := (size + store.ChunkSize - 1) / store.ChunkSize
		if got := count(t, pool, "SELECT count(*) FROM file_chunks WHERE file_id = $1", f.ID); got != wantChunks {
			t.Errorf("%d bytes: got %d chunks, want %d", size, got, wantChunks)
		}
		g, err := st.GetFile(ctx, owner.ID, f.ID)
		if err != nil {
			t.Fatalf("GetFile: %v", err)
		}
		if g.ID != f.ID || g.Name != "a.bin" || g.ContentType != "application/octet-stream" || g.Size != f.Size || g.SHA256 != f.SHA256 || g.Owner != owner.ID {
			t.Errorf("GetFile: got %+v, want %+v", g, f)
		}
		var out bytes.Buffer
		n, err := st.CopyFileTo(ctx, &out, g)
		if err != nil || n != int64(size) {
			t.Fatalf("CopyFileTo: got %d, %v, want %d", n, err, size)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Errorf("%d bytes: read back different bytes", size)
		}
	}
}

// failingReader yields n random bytes, then err.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

// emptyReader returns no bytes and no error, forever.
type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestCreateFileReadErrorLeavesNothing(t *testing.T) {
	ctx := t.Context()
	st, pool := newStore(t)
	owner := mustUser(t, st, "alice")
	boom := errors.New("client went away")

	t.Run("reader fails midway", func(t *testing.T) {
		r := &failingReader{r: bytes.NewReader(randomBytes(t, 3*store.ChunkSize+100)), err: boom}
		_, err := st.CreateFile(ctx, owner.ID, "x", "text/plain", r)
		if !errors.Is(err, boom) {
			t.Errorf("CreateFile: got %v, want %v", err, boom)
		}
	})
	// io.ErrUnexpectedEOF is what a reader of a body cut short says (a multipart part
	// whose closing boundary never came); it is not the end of the file.
	for _, size := range []int{100, store.ChunkSize, 2*store.ChunkSize + 100} {
		t.Run(fmt.Sprintf("unexpected EOF after %d bytes", size), func(t *testing.T) {
			r := &failingReader{r: bytes.NewReader(randomBytes(t, size)), err: io.ErrUnexpectedEOF}
			f, err := st.CreateFile(ctx, owner.ID, "cut", "text/plain", r)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("CreateFile: got %+v, %v; want an io.ErrUnexpectedEOF error", f, err)
			}
		})
	}
	t.Run("reader makes no progress", func(t *testing.T) {
		r := io.MultiReader(bytes.NewReader(randomBytes(t, 100)), emptyReader{})
		if _, err := st.CreateFile(ctx, owner.ID, "stuck", "text/plain", r); !errors.Is(err, io.ErrNoProgress) {
			t.Errorf("CreateFile: got %v, want io.ErrNoProgress", err)
		}
	})
	t.Run("over MaxBytesReader", func(t *testing.T) {
		body := io.NopCloser(bytes.NewReader(randomBytes(t, 2*store.ChunkSize)))
		r := http.MaxBytesReader(nil, body, store.ChunkSize+10)
		_, err := st.CreateFile(ctx, owner.ID, "y", "text/plain", r)
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			t.Errorf("CreateFile: got %v, want an *http.MaxBytesError", err)
		}
	})
	t.Run("context canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		pr, pw := io.Pipe()
		go func() {
			pw.Write(randomBytes(t, store.ChunkSize))
			cancel()
			pw.Write(randomBytes(t, store.ChunkSize))
			pw.Close()
		}()
		if _, err := st.CreateFile(cctx, owner.ID, "z", "text/plain", pr); err == nil {
			t.Error("CreateFile with a canceled context: got nil error")
		}
	})
	if got := count(t, pool, "SELECT count(*) FROM files"); got != 0 {
		t.Errorf("files rows: got %d, want 0", got)
	}
	if got := count(t, pool, "SELECT count(*) FROM file_chunks"); got != 0 {
		t.Errorf("file_chunks rows: got %d, want 0", got)
	}
}

func TestGetFileNotFound(t *testing.T) {
	ctx := t.Context()
	st, pool := newStore(t)
	alice := mustUser(t, st, "alice")
	bob := mustUser(t, st, "bob")
	f, err := st.CreateFile(ctx, alice.ID, "a", "text/plain", bytes.NewReader([]byte("hello")))
	if err != nil {
		t.Fatal(err)
	}
	var uploading string
	if err := pool.QueryRow(ctx, "INSERT INTO files (owner, name, content_type) VALUES ($1, 'u', 'text/plain') RETURNING id::text", alice.ID).Scan(&uploading); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		owner int64
		id    string
	}{
		{"not the owner", bob.ID, f.ID},
		{"not a uuid", alice.ID, "../../etc/passwd"},
		{"empty id", alice.ID, ""},
		{"unknown uuid", alice.ID, "8c6c1e55-52c4-4a3c-9f0e-0a5d3b6a7c11"},
		{"still uploading", alice.ID, uploading},
	}
	for _, tt := range tests {
		if _, err := st.GetFile(ctx, tt.owner, tt.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: got %v, want ErrNotFound", tt.name, err)
		}
	}
	upper, err := st.GetFile(ctx, alice.ID, "{"+f.ID+"}")
	if err != nil || upper.ID != f.ID {
		t.Errorf("GetFile with braces: got %q, %v, want %q", upper.ID, err, f.ID)
	}
}

func TestListFiles(t *testing.T) {
	ctx := t.Context()
	st, _ := newStore(t)
	alice := mustUser(t, st, "alice")
	bob := mustUser(t, st, "bob")
	var want []string // newest first
	for i := range 5 {
		f, err := st.CreateFile(ctx, alice.ID, string(rune('a'+i)), "text/plain", bytes.NewReader([]byte{byte(i)}))
		if err != nil {
			t.Fatal(err)
		}
		want = append([]string{f.ID}, want...)
	}
	bobs, err := st.CreateFile(ctx, bob.ID, "b", "text/plain", bytes.NewReader([]byte("b")))
	if err != nil {
		t.Fatal(err)
	}

	var got []string
	after := ""
	pages := 0
	for {
		page, err := st.ListFiles(ctx, alice.ID, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 2 {
			t.Fatalf("page of %d, want at most 2", len(page))
		}
		pages++
		for _, f := range page {
			got = append(got, f.ID)
		}
		after = page[len(page)-1].ID
	}
	if pages != 3 || len(got) != len(want) {
		t.Fatalf("pages: got %d with %d files, want 3 with %d", pages, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("file %d: got %s, want %s", i, got[i], want[i])
		}
	}
	all, err := st.ListFiles(ctx, alice.ID, "", 0)
	if err != nil || len(all) != 5 {
		t.Errorf("ListFiles default limit: got %d, %v, want 5", len(all), err)
	}
	none, err := st.ListFiles(ctx, mustUser(t, st, "carol").ID, "", 10)
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("ListFiles of a user without files: got %#v, %v, want an empty non-nil slice", none, err)
	}
	for _, bad := range []string{"nope", bobs.ID} {
		if _, err := st.ListFiles(ctx, alice.ID, bad, 2); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ListFiles after %q: got %v, want ErrNotFound", bad, err)
		}
	}
}

func TestSweepStaleUploads(t *testing.T) {
	ctx := t.Context()
	st, pool := newStore(t)
	alice := mustUser(t, st, "alice")
	ready, err := st.CreateFile(ctx, alice.ID, "r", "text/plain", bytes.NewReader([]byte("ready")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "UPDATE files SET updated_at = now() - interval '2 hours' WHERE id = $1", ready.ID); err != nil {
		t.Fatal(err)
	}

	// An upload in progress, stopped after its first chunk.
	pr, pw := io.Pipe()
	type result struct {
		f   store.File
		err error
	}
	res := make(chan result, 1)
	go func() {
		f, err := st.CreateFile(ctx, alice.ID, "slow", "text/plain", pr)
		res <- result{f, err}
	}()
	if _, err := pw.Write(randomBytes(t, store.ChunkSize)); err != nil {
		t.Fatal(err)
	}
	// The pipe hands over the chunk once CreateFile reads it; wait for it to be stored.
	waitFor(t, "the first chunk to be stored", func() bool {
		return count(t, pool, "SELECT count(*) FROM file_chunks c JOIN files f ON f.id = c.file_id WHERE f.state = 'uploading'") > 0
	})

	n, err := st.SweepStaleUploads(ctx, time.Hour)
	if err != nil || n != 0 {
		t.Errorf("SweepStaleUploads with a fresh upload: got %d, %v, want 0", n, err)
	}
	if _, err := pool.Exec(ctx, "UPDATE files SET updated_at = now() - interval '2 hours' WHERE state = 'uploading'"); err != nil {
		t.Fatal(err)
	}
	n, err = st.SweepStaleUploads(ctx, time.Hour)
	if err != nil || n != 1 {
		t.Errorf("SweepStaleUploads with a stale upload: got %d, %v, want 1", n, err)
	}
	if got := count(t, pool, "SELECT count(*) FROM file_chunks c JOIN files f ON f.id = c.file_id WHERE f.id <> $1", ready.ID); got != 0 {
		t.Errorf("chunks of swept upload: got %d, want 0", got)
	}
	// The writer of the swept upload fails rather than resurrecting it.
	pw.Write(randomBytes(t, store.ChunkSize))
	pw.Close()
	if r := <-res; r.err == nil {
		t.Errorf("CreateFile of a swept upload: got %+v, want an error", r.f)
	}
	if _, err := st.GetFile(ctx, alice.ID, ready.ID); err != nil {
		t.Errorf("ready file after sweep: %v", err)
	}
	if got := count(t, pool, "SELECT count(*) FROM files"); got != 1 {
		t.Errorf("files: got %d, want only the ready one", got)
	}
}

// TestDatabaseRestart: after PostgreSQL restarts, the first reads succeed although every
// pooled connection died with it.
func TestDatabaseRestart(t *testing.T) {
	ctx := t.Context()
	cluster := pgtest.NewCluster(t, pgtest.ClusterOptions{Port: pgtest.FreePort(t)})
	// Never ping before use, so the dead connections are really used after the restart.
	pool := pgtest.OpenPool(t, cluster.DSN("postgres"), func(c *pgxpool.Config) {
		c.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	}, store.Migrate)
	st := store.New(testDB(pool))
	alice := mustUser(t, st, "alice")
	data := randomBytes(t, store.ChunkSize+1)
	f, err := st.CreateFile(ctx, alice.ID, "f", "text/plain", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	reads := []struct {
		name string
		read func() error
	}{
		{"UserByUsername", func() error { _, err := st.UserByUsername(ctx, "alice"); return err }},
		{"LoginBlocked", func() error {
			_, err := st.LoginBlocked(ctx, netip.MustParseAddr("192.0.2.1"), "alice", 10, time.Minute)
			return err
		}},
		{"GetFile", func() error { _, err := st.GetFile(ctx, alice.ID, f.ID); return err }},
		{"ListFiles", func() error { _, err := st.ListFiles(ctx, alice.ID, "", 10); return err }},
		{"CopyFileTo", func() error {
			var b bytes.Buffer
			if _, err := st.CopyFileTo(ctx, &b, f); err != nil {
				return err
			}
			if !bytes.Equal(b.Bytes(), data) {
				return errors.New("different bytes")
			}
			return nil
		}},
	}
	for _, r := range reads {
		// Fill the pool with connections that the restart will kill.
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { st.UserByID(ctx, alice.ID) })
		}
		wg.Wait()
		if err := cluster.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := cluster.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.read(); err != nil {
			t.Errorf("%s, first call after a restart: %v", r.name, err)
		}
	}
}
