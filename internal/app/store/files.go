package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"outrigger/internal/app/pgretry"
)

// ChunkSize is the size of each stored piece of a file (the last one may be shorter).
const ChunkSize = 256 << 10

// touchEvery is how often a long upload refreshes its files.updated_at, so that
// SweepStaleUploads leaves uploads that are still making progress alone.
const touchEvery = 10 * time.Second

// File describes a stored file.
type File struct {
	ID          string // random UUID, canonical lower-case form
	Owner       int64  // users.id
	Name        string
	ContentType string
	Size        int64
	SHA256      string // lower-case hex
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// CreateFile stores the bytes read from r (until r returns io.EOF) as a file of owner, in
// ChunkSize chunks, each written by its own short statement. It computes the size and
// SHA-256 and marks the file ready at the end, once the database holds every chunk. If
// reading r fails with any other error (io.ErrUnexpectedEOF from a body cut short included,
// or an *http.MaxBytesError) or a write fails, it deletes what it wrote (see discard) and
// returns the error (wrapping the read error, so errors.As finds it).
//
// Every write is safe to repeat after a lost acknowledgement: the file's id is chosen here,
// a chunk is keyed by (file, index), and marking it ready twice is harmless. Each chunk after
// the first renews the request's database budget (pgretry.Renew): the budget bounds the wait
// on the database for one chunk, not for the whole upload; the last chunk and the final
// update share one, so the answer comes within the budget of the body's end.
func (s *Store) CreateFile(ctx context.Context, owner int64, name, contentType string, r io.Reader) (File, error) {
	f := File{ID: uuid.NewString(), Owner: owner, Name: name, ContentType: contentType}
	err := s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
		return q.QueryRow(ctx,
			`INSERT INTO files (id, owner, name, content_type) VALUES ($1, $2, $3, $4)
			 ON CONFLICT (id) DO UPDATE SET updated_at = now() RETURNING created_at`,
			f.ID, owner, name, contentType).Scan(&f.CreatedAt)
	})
	if err != nil {
		return File{}, fmt.Errorf("create file %q: %w", name, err)
	}
	if err := s.writeChunks(ctx, &f, r); err != nil {
		if derr := s.discard(ctx, f.ID); derr != nil {
			return File{}, errors.Join(err, derr)
		}
		return File{}, err
	}
	return f, nil
}

func (s *Store) writeChunks(ctx context.Context, f *File, r io.Reader) error {
	buf := make([]byte, ChunkSize)
	h := sha256.New()
	lastTouch := time.Now()
	chunks := 0
	for seq := 0; ; seq++ {
		n, rerr := fill(r, buf)
		if rerr != nil && rerr != io.EOF {
			// Even io.ErrUnexpectedEOF: the body was cut short, and the file must not
			// become ready with what arrived.
			return fmt.Errorf("read upload of file %s: %w", f.ID, rerr)
		}
		if n > 0 {
			h.Write(buf[:n])
			f.Size += int64(n)
			chunks++
			if seq > 0 {
				pgretry.Renew(ctx) // a new chunk: the wait on the database starts over
			}
			if _, err := s.exec(ctx, `INSERT INTO file_chunks (file_id, seq, data) VALUES ($1, $2, $3)
				ON CONFLICT (file_id, seq) DO NOTHING`, f.ID, seq, buf[:n]); err != nil {
				return fmt.Errorf("store chunk %d of file %s: %w", seq, f.ID, err)
			}
			if time.Since(lastTouch) > touchEvery {
				if _, err := s.exec(ctx, "UPDATE files SET updated_at = now() WHERE id = $1", f.ID); err != nil {
					return fmt.Errorf("touch file %s: %w", f.ID, err)
				}
				lastTouch = time.Now()
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	f.SHA256 = hex.EncodeToString(h.Sum(nil))
	// Ready only if every chunk is there, whole; a repeat finds it ready with this hash.
	err := s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
		return q.QueryRow(ctx, `UPDATE files SET state = 'ready', size = $2, sha256 = $3, updated_at = now()
			WHERE id = $1 AND (state = 'uploading' OR sha256 = $3)
			  AND (SELECT count(*) FROM file_chunks WHERE file_id = $1) = $4
			  AND (SELECT coalesce(sum(octet_length(data)), 0) FROM file_chunks WHERE file_id = $1) = $2
			RETURNING updated_at`, f.ID, f.Size, f.SHA256, chunks).Scan(&f.UpdatedAt)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("finish file %s: the row is gone (swept as stale?) or its chunks are not all there", f.ID)
	}
	if err != nil {
		return fmt.Errorf("finish file %s: %w", f.ID, err)
	}
	return nil
}

// maxEmptyReads is how many reads in a row may return no bytes and no error before fill
// gives up (as bufio does), so a broken reader cannot spin an upload forever.
const maxEmptyReads = 100

// fill reads from r until buf is full or r fails. It returns io.EOF only when r itself
// said io.EOF (the end of the file); any other error is r's own. Unlike io.ReadFull, it
// never turns a short read into io.ErrUnexpectedEOF, nor takes a reader's
// io.ErrUnexpectedEOF (a body cut short) for the end of the file.
func fill(r io.Reader, buf []byte) (int, error) {
	n, empty := 0, 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
		if m > 0 {
			empty = 0
		} else if empty++; empty >= maxEmptyReads {
			return n, io.ErrNoProgress
		}
	}
	return n, nil
}

// SweepStaleUploads deletes uploads that made no progress for olderThan (their writer died or
// gave up) and their chunks. It returns how many files it deleted.
func (s *Store) SweepStaleUploads(ctx context.Context, olderThan time.Duration) (int64, error) {
	n, err := s.exec(ctx,
		"DELETE FROM files WHERE state = 'uploading' AND updated_at < now() - $1::interval", olderThan)
	if err != nil {
		return 0, fmt.Errorf("sweep stale uploads: %w", err)
	}
	return n, nil
}

// canonicalID returns id as a canonical UUID string, or false if it is not a UUID.
func canonicalID(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

const fileColumns = "id::text, owner, name, content_type, size, sha256, created_at, updated_at"

func scanFile(row pgx.Row) (File, error) {
	var f File
	err := row.Scan(&f.ID, &f.Owner, &f.Name, &f.ContentType, &f.Size, &f.SHA256, &f.CreatedAt, &f.UpdatedAt)
	return f, err
}

// GetFile returns owner's ready file id. It returns ErrNotFound when id is not a UUID, or no
// such file exists, or it belongs to someone else, or its upload has not finished.
func (s *Store) GetFile(ctx context.Context, owner int64, id string) (File, error) {
	id, ok := canonicalID(id)
	if !ok {
		return File{}, ErrNotFound
	}
	var f File
	err := s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
		var err error
		f, err = scanFile(q.QueryRow(ctx,
			"SELECT "+fileColumns+" FROM files WHERE id = $1 AND owner = $2 AND state = 'ready'", id, owner))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return File{}, ErrNotFound
	}
	if err != nil {
		return File{}, fmt.Errorf("get file %s: %w", id, err)
	}
	return f, nil
}

// CopyFileTo writes the bytes of f (from GetFile) to w, one chunk per short query, holding a
// database connection only while it reads a chunk (never while it writes to w). It returns
// the number of bytes written. Each chunk sent renews the request's database budget
// (pgretry.Renew), as in CreateFile.
func (s *Store) CopyFileTo(ctx context.Context, w io.Writer, f File) (int64, error) {
	chunks := int((f.Size + ChunkSize - 1) / ChunkSize)
	buf := make(pgtype.PreallocBytes, ChunkSize)
	var written int64
	for seq := range chunks {
		err := s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
			buf = buf[:cap(buf)]
			return q.QueryRow(ctx, "SELECT data FROM file_chunks WHERE file_id = $1 AND seq = $2", f.ID, seq).Scan(&buf)
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return written, fmt.Errorf("read file %s: chunk %d is missing (file deleted?)", f.ID, seq)
		}
		if err != nil {
			return written, fmt.Errorf("read chunk %d of file %s: %w", seq, f.ID, err)
		}
		n, err := w.Write(buf)
		written += int64(n)
		if err != nil {
			return written, fmt.Errorf("write file %s: %w", f.ID, err)
		}
		pgretry.Renew(ctx)
	}
	if written != f.Size {
		return written, fmt.Errorf("read file %s: got %d bytes, want %d", f.ID, written, f.Size)
	}
	return written, nil
}

// MaxListLimit is the largest page ListFiles returns; DefaultListLimit is used for limit <= 0.
const (
	MaxListLimit     = 1000
	DefaultListLimit = 100
)

// ListFiles returns owner's ready files, newest first, at most limit (clamped to
// 1..MaxListLimit; <= 0 means DefaultListLimit). after, if not empty, is the ID of the last
// file of the previous page; ErrNotFound if it is not one of owner's ready files.
func (s *Store) ListFiles(ctx context.Context, owner int64, after string, limit int) ([]File, error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	query := "SELECT " + fileColumns + ` FROM files
		WHERE owner = $1 AND state = 'ready'
		ORDER BY created_at DESC, id DESC LIMIT $2`
	args := []any{owner, limit}
	if after != "" {
		id, ok := canonicalID(after)
		if !ok {
			return nil, ErrNotFound
		}
		var exists bool
		if err := s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
			return q.QueryRow(ctx,
				"SELECT EXISTS (SELECT 1 FROM files WHERE id = $1 AND owner = $2 AND state = 'ready')", id, owner).Scan(&exists)
		}); err != nil {
			return nil, fmt.Errorf("list files: %w", err)
		}
		if !exists {
			return nil, ErrNotFound
		}
		query = "SELECT " + fileColumns + ` FROM files
			WHERE owner = $1 AND state = 'ready'
			  AND (created_at, id) < (SELECT created_at, id FROM files WHERE id = $3)
			ORDER BY created_at DESC, id DESC LIMIT $2`
		args = append(args, id)
	}
	var files []File
	err := s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
		rows, err := q.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		files, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (File, error) { return scanFile(row) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list files: %w", err)
	}
	if files == nil {
		files = []File{}
	}
	return files, nil
}
