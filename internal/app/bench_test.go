package app

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// heapPeak samples the heap while a benchmark runs and reports the peak
// above the heap in use when it started, as peak-heap-MiB.
type heapPeak struct {
	base, peak uint64
	stop       chan struct{}
	done       sync.WaitGroup
}

func startHeapPeak() *heapPeak {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := &heapPeak{base: ms.HeapInuse, peak: ms.HeapInuse, stop: make(chan struct{})}
	h.done.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			h.peak = max(h.peak, ms.HeapInuse)
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	})
	return h
}

func (h *heapPeak) report(b *testing.B) {
	close(h.stop)
	h.done.Wait()
	b.ReportMetric(float64(h.peak-h.base)/(1<<20), "peak-heap-MiB")
}

// BenchmarkTransfer8MiB uploads and downloads an 8 MiB file through the
// whole HTTP handler (request log, cross-origin check, session lookup,
// multipart parsing, 256 KiB chunks in PostgreSQL) over real TCP. Client and
// server run in this process, so allocs and heap count both.
//
//	go test -run '^$' -bench Transfer8MiB -benchtime 20x ./internal/app/
func BenchmarkTransfer8MiB(b *testing.B) {
	const size = 8 << 20
	a := newTestApp(b, appOptions{plain: true, cfg: Config{MaxUploadBytes: 16 << 20}})
	c := newAgent(b)
	c.signupLogin(a.URL, "bench", "password1")
	data := make([]byte, size)
	rand.Read(data)
	body, ctype := multipartBody(b, "file", "bench.bin", data)
	raw := body.Bytes()

	upload := func() string {
		req, _ := http.NewRequest("POST", a.URL+"/api/files", bytes.NewReader(raw))
		req.Header.Set("Content-Type", ctype)
		resp, err := c.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("upload: status %d", resp.StatusCode)
		}
		var f fileBody
		if err := jsonDecode(resp.Body, &f); err != nil {
			b.Fatal(err)
		}
		return f.ID
	}

	b.Run("upload", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		h := startHeapPeak()
		b.ResetTimer()
		for b.Loop() {
			upload()
		}
		b.StopTimer()
		h.report(b)
	})

	id := upload()
	b.Run("download", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		h := startHeapPeak()
		b.ResetTimer()
		for b.Loop() {
			resp, err := c.client.Get(a.URL + "/api/files/" + id)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || n != size || resp.StatusCode != http.StatusOK {
				b.Fatalf("download: status %d, %d bytes, %v", resp.StatusCode, n, err)
			}
		}
		b.StopTimer()
		h.report(b)
	})
}

// BenchmarkLoginFailure compares a wrong password for a known user with a
// login for an unknown one, at bcrypt.DefaultCost: the two should take the
// same time (the unknown user is compared against a dummy hash), so that
// timing does not tell which usernames exist.
//
//	go test -run '^$' -bench LoginFailure -benchtime 20x ./internal/app/
func BenchmarkLoginFailure(b *testing.B) {
	a := newTestApp(b, appOptions{plain: true, cfg: Config{BcryptCost: bcrypt.DefaultCost}})
	c := newAgent(b)
	wantStatus(b, c.call("POST", a.URL+"/api/signup", credentials{"known", "password1"}), http.StatusCreated)
	for _, user := range []string{"known", "unknown"} {
		b.Run(user, func(b *testing.B) {
			for b.Loop() {
				r := c.call("POST", a.URL+"/api/login", credentials{user, "wrong-password"})
				if r.StatusCode != http.StatusUnauthorized {
					b.Fatalf("status %d", r.StatusCode)
				}
				b.StopTimer()
				if _, err := a.pool.Exec(b.Context(), "DELETE FROM login_failures"); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
