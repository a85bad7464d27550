package store_test

import (
	"bytes"
	"io"
	"testing"
)

const benchFileSize = 8 << 20

// BenchmarkCreateFile8MiB writes an 8 MiB file through the store (32 chunk statements).
func BenchmarkCreateFile8MiB(b *testing.B) {
	st, pool := newStore(b)
	owner := mustUser(b, st, "bench")
	data := randomBytes(b, benchFileSize)
	b.SetBytes(benchFileSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.CreateFile(b.Context(), owner.ID, "bench.bin", "application/octet-stream", bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if _, err := pool.Exec(b.Context(), "DELETE FROM files"); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCopyFileTo8MiB reads an 8 MiB file back through the store, chunk by chunk.
func BenchmarkCopyFileTo8MiB(b *testing.B) {
	st, _ := newStore(b)
	owner := mustUser(b, st, "bench")
	f, err := st.CreateFile(b.Context(), owner.ID, "bench.bin", "application/octet-stream", bytes.NewReader(randomBytes(b, benchFileSize)))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchFileSize)
	b.ReportAllocs()
	for b.Loop() {
		n, err := st.CopyFileTo(b.Context(), io.Discard, f)
		if err != nil || n != benchFileSize {
			b.Fatalf("CopyFileTo: %d, %v", n, err)
		}
	}
}
