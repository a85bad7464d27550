package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestUpload(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)
	c.signupLogin(a.URL, "alice", "password1")

	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{7}, 1000)...)
	big := bytes.Repeat([]byte("0123456789abcdef"), (600<<10)/16) // three chunks
	tests := []struct {
		name, filename string
		data           []byte
		wantName       string
		wantType       string
	}{
		{"png", "pic.png", png, "pic.png", "image/png"},
		{"pdf", "doc.pdf", []byte("%PDF-1.4\n%...\n"), "doc.pdf", "application/pdf"},
		{"html is not served as html", "x.html", []byte("<html><script>alert(1)</script></html>"), "x.html", "application/octet-stream"},
		{"path cut", `..\..\windows\evil.exe`, []byte("MZ"), "evil.exe", "application/octet-stream"},
		{"control chars", "a\x01b\x7fc\td.txt", []byte("hi"), "abcd.txt", "application/octet-stream"},
		{"empty file", "empty", nil, "empty", "application/octet-stream"},
		{"several chunks", "big.bin", big, "big.bin", "application/octet-stream"},
		{"long name", strings.Repeat("n", 300) + ".txt", []byte("x"), strings.Repeat("n", 255), "application/octet-stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := c.with(t) // fail this subtest, not its parent
			r := c.upload(a.URL, tc.filename, tc.data)
			wantStatus(t, r, http.StatusCreated)
			var f fileBody
			r.json(t, &f)
			var raw map[string]any // exactly DESIGN's fields
			r.json(t, &raw)
			if len(raw) != 5 {
				t.Errorf("upload answer %s, want exactly id, name, size, sha256, content_type", r.Body)
			}
			sum := sha256.Sum256(tc.data)
			if f.Name != tc.wantName || f.Size != int64(len(tc.data)) || f.SHA256 != hex.EncodeToString(sum[:]) || f.ContentType != tc.wantType || len(f.ID) != 36 {
				t.Errorf("got %+v; want name %q, size %d, type %q", f, tc.wantName, len(tc.data), tc.wantType)
			}
			// The bytes come back identical.
			d := c.call("GET", a.URL+"/api/files/"+f.ID, nil)
			wantStatus(t, d, http.StatusOK)
			if !bytes.Equal(d.Body, tc.data) {
				t.Errorf("downloaded %d bytes, not the %d uploaded", len(d.Body), len(tc.data))
			}
		})
	}

	errs := []struct {
		name  string
		body  io.Reader
		ctype string
		want  int
	}{
		{"not multipart", strings.NewReader(`{"file":"x"}`), "application/json", http.StatusBadRequest},
		{"no file field", mustMultipart(t, "other", "x.txt", []byte("x")), "", http.StatusBadRequest},
		{"cut multipart", strings.NewReader("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc"), "multipart/form-data; boundary=b", http.StatusBadRequest},
		{"cut after chunks", io.MultiReader(strings.NewReader("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n"),
			bytes.NewReader(bytes.Repeat([]byte("c"), 600<<10))), "multipart/form-data; boundary=b", http.StatusBadRequest},
	}
	files, chunks := count(t, a.pool, "files"), count(t, a.pool, "file_chunks")
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			c := c.with(t) // fail this subtest, not its parent
			ctype := tc.ctype
			if ctype == "" {
				ctype = tc.body.(*bodyWithType).ctype
			}
			r := c.call("POST", a.URL+"/api/files", tc.body, "Content-Type", ctype)
			wantStatus(t, r, tc.want)
			r.errorText(t)
		})
	}
	if f, ch := count(t, a.pool, "files"), count(t, a.pool, "file_chunks"); f != files || ch != chunks {
		t.Errorf("after refused uploads: %d files and %d chunks, want %d and %d", f, ch, files, chunks)
	}

	anon := newAgent(t)
	r := anon.upload(a.URL, "x.txt", []byte("x"))
	wantStatus(t, r, http.StatusUnauthorized)
}

// bodyWithType is a multipart body that knows its content type.
type bodyWithType struct {
	*bytes.Buffer
	ctype string
}

func mustMultipart(t *testing.T, field, name string, data []byte) *bodyWithType {
	b, ct := multipartBody(t, field, name, data)
	return &bodyWithType{b, ct}
}

// TestUploadTooLarge: over MAX_UPLOAD_BYTES the answer is 413 and nothing is
// kept, neither a file row nor a chunk.
func TestUploadTooLarge(t *testing.T) {
	const limit = 1 << 20
	a := newTestApp(t, appOptions{cfg: Config{MaxUploadBytes: limit}})
	c := newAgent(t)
	c.signupLogin(a.URL, "alice", "password1")

	// Just under the limit (with the multipart framing) is fine.
	r := c.upload(a.URL, "fits.bin", bytes.Repeat([]byte("x"), limit-1024))
	wantStatus(t, r, http.StatusCreated)
	files, chunks := count(t, a.pool, "files"), count(t, a.pool, "file_chunks")

	tests := []struct {
		name    string
		chunked bool // no Content-Length: the limit is found while reading
	}{
		{"content-length", false},
		{"chunked", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := c.with(t) // fail this subtest, not its parent
			body, ctype := multipartBody(t, "file", "big.bin", bytes.Repeat([]byte("y"), 3*limit))
			var rd io.Reader = body
			if tc.chunked {
				rd = io.MultiReader(body) // hides the length
			}
			req := request(t, "POST", a.URL+"/api/files", rd, "Content-Type", ctype)
			r := c.do(req)
			wantStatus(t, r, http.StatusRequestEntityTooLarge)
			if msg := r.errorText(t); !strings.Contains(msg, strconv.Itoa(limit)) {
				t.Errorf("error %q does not say the limit", msg)
			}
			if f, ch := count(t, a.pool, "files"), count(t, a.pool, "file_chunks"); f != files || ch != chunks {
				t.Errorf("after 413: %d files and %d chunks, want %d and %d (nothing kept)", f, ch, files, chunks)
			}
		})
	}
}

func TestDownload(t *testing.T) {
	a := newTestApp(t, appOptions{})
	alice, bob := newAgent(t), newAgent(t)
	alice.signupLogin(a.URL, "alice", "password1")
	bob.signupLogin(a.URL, "bob", "password1")

	data := []byte("%PDF-1.7\nhello")
	f := alice.uploadFile(a.URL, `résumé "final".pdf`, data)
	sum := sha256.Sum256(data)

	d := alice.call("GET", a.URL+"/api/files/"+f.ID, nil)
	wantStatus(t, d, http.StatusOK)
	want := map[string]string{
		"Content-Type":            "application/pdf",
		"Content-Length":          strconv.Itoa(len(data)),
		"ETag":                    `"` + hex.EncodeToString(sum[:]) + `"`,
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "sandbox; default-src 'none'",
	}
	for k, v := range want {
		if got := d.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	disp, params, err := mime.ParseMediaType(d.Header.Get("Content-Disposition"))
	if err != nil || disp != "attachment" || params["filename"] != `résumé "final".pdf` {
		t.Errorf("Content-Disposition %q: %q %q %v", d.Header.Get("Content-Disposition"), disp, params, err)
	}
	if !bytes.Equal(d.Body, data) {
		t.Errorf("body %q, want %q", d.Body, data)
	}

	// HEAD: the same headers, no body.
	hd := alice.call("HEAD", a.URL+"/api/files/"+f.ID, nil)
	wantStatus(t, hd, http.StatusOK)
	if hd.Header.Get("ETag") != want["ETag"] || hd.ContentLength != int64(len(data)) || len(hd.Body) != 0 {
		t.Errorf("HEAD: ETag %q, Content-Length %d, %d body bytes", hd.Header.Get("ETag"), hd.ContentLength, len(hd.Body))
	}

	// If-None-Match with the ETag: 304, no body.
	nm := alice.call("GET", a.URL+"/api/files/"+f.ID, nil, "If-None-Match", d.Header.Get("ETag"))
	wantStatus(t, nm, http.StatusNotModified)
	if len(nm.Body) != 0 {
		t.Errorf("304 with a body of %d bytes", len(nm.Body))
	}

	tests := []struct {
		name string
		who  *agent
		id   string
		want int
	}{
		{"someone else's", bob, f.ID, http.StatusNotFound},
		{"missing", alice, "7d0a3b52-3d1f-4a5e-8c1e-0d6f0b1b2c3d", http.StatusNotFound},
		{"not a uuid", alice, "nope", http.StatusNotFound},
		{"anonymous", newAgent(t), f.ID, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		r := tc.who.call("GET", a.URL+"/api/files/"+tc.id, nil)
		if r.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, r.StatusCode, tc.want)
		}
		if tc.want != http.StatusOK {
			r.errorText(t)
		}
	}
}

// TestDownloadDatabaseDownBeforeFirstChunk: PostgreSQL going away after the
// file's row was read but before its first chunk gives a clean JSON 503, not
// a 200 whose body breaks off.
func TestDownloadDatabaseDownBeforeFirstChunk(t *testing.T) {
	cl, pool := privateCluster(t)
	stop := make(chan struct{}, 1) // a token: stop the database in the next download
	cfg := Config{beforeCopy: func() {
		select {
		case <-stop:
			if err := cl.Stop(context.Background()); err != nil {
				t.Errorf("stop cluster: %v", err)
			}
		default:
		}
	}}
	a := newTestApp(t, appOptions{pool: pool, cfg: cfg})
	c := newAgent(t)
	c.signupLogin(a.URL, "alice", "password1")
	f := c.uploadFile(a.URL, "a.pdf", []byte("%PDF-1.4\nsome bytes"))
	wantStatus(t, c.call("GET", a.URL+"/api/files/"+f.ID, nil), http.StatusOK)

	stop <- struct{}{}
	d := c.call("GET", a.URL+"/api/files/"+f.ID, nil)
	wantStatus(t, d, http.StatusServiceUnavailable)
	d.errorText(t)
	if ct := d.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	for _, k := range []string{"Content-Disposition", "ETag", "Set-Cookie"} {
		if v := d.Header.Values(k); len(v) > 0 {
			t.Errorf("503 carries %s %q", k, v)
		}
	}
	if d.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
}

func TestListFiles(t *testing.T) {
	a := newTestApp(t, appOptions{})
	alice, bob := newAgent(t), newAgent(t)
	alice.signupLogin(a.URL, "alice", "password1")
	bob.signupLogin(a.URL, "bob", "password1")
	wantStatus(t, bob.upload(a.URL, "bobs.txt", []byte("b")), http.StatusCreated)

	var ids []string
	for i := range 5 {
		f := alice.uploadFile(a.URL, fmt.Sprintf("f%d.txt", i), []byte{byte(i)})
		ids = append(ids, f.ID)
	}

	list := func(query string) []listedFile {
		t.Helper()
		r := alice.call("GET", a.URL+"/api/files"+query, nil)
		wantStatus(t, r, http.StatusOK)
		var fs []listedFile
		r.json(t, &fs)
		return fs
	}
	all := list("")
	if len(all) != 5 {
		t.Fatalf("%d files, want 5 (only alice's)", len(all))
	}
	// Newest first, pages of 2 following ?after=.
	var paged []string
	after := ""
	for range 4 {
		q := "?limit=2"
		if after != "" {
			q += "&after=" + after
		}
		page := list(q)
		if len(page) > 2 {
			t.Fatalf("page of %d, want at most 2", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, f := range page {
			paged = append(paged, f.ID)
		}
		after = page[len(page)-1].ID
	}
	if len(paged) != 5 {
		t.Fatalf("paged through %d files, want 5", len(paged))
	}
	for i, id := range paged {
		if id != ids[4-i] || all[i].ID != id {
			t.Errorf("position %d: %s, want %s (newest first)", i, id, ids[4-i])
		}
	}
	if all[0].Name != "f4.txt" || all[0].Size != 1 || all[0].Created.IsZero() || time.Since(all[0].Created) > time.Hour {
		t.Errorf("first entry %+v", all[0])
	}

	for _, q := range []string{"?limit=0", "?limit=x", "?limit=100000", "?after=nope", "?after=7d0a3b52-3d1f-4a5e-8c1e-0d6f0b1b2c3d"} {
		r := alice.call("GET", a.URL+"/api/files"+q, nil)
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", q, r.StatusCode)
		}
	}
	wantStatus(t, newAgent(t).call("GET", a.URL+"/api/files", nil), http.StatusUnauthorized)
	empty := newAgent(t)
	empty.signupLogin(a.URL, "carol", "password1")
	r := empty.call("GET", a.URL+"/api/files", nil)
	wantStatus(t, r, http.StatusOK)
	if s := strings.TrimSpace(string(r.Body)); s != "[]" {
		t.Errorf("no files: body %q, want []", s)
	}
}

// TestTransferSlots: at most MaxTransfers uploads and downloads at once; one
// more waits TransferWait and then gets 503.
func TestTransferSlots(t *testing.T) {
	a := newTestApp(t, appOptions{cfg: Config{MaxTransfers: 1, TransferWait: 200 * time.Millisecond}})
	c := newAgent(t)
	c.signupLogin(a.URL, "alice", "password1")
	f := c.uploadFile(a.URL, "one.txt", []byte("one"))

	// A slow upload holds the only slot.
	pr, pw := io.Pipe()
	body, ctype := multipartBody(t, "file", "slow.bin", bytes.Repeat([]byte("s"), 4096))
	raw := body.Bytes()
	done := make(chan response, 1)
	go func() {
		done <- c.do(request(t, "POST", a.URL+"/api/files", pr, "Content-Type", ctype))
	}()
	pw.Write(raw[:len(raw)/2])
	// Wait until the server holds the slot: a download gets 503 once it does.
	var busy response
	deadline := time.Now().Add(10 * time.Second)
	for {
		busy = c.call("GET", a.URL+"/api/files/"+f.ID, nil)
		if busy.StatusCode == http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
	}
	wantStatus(t, busy, http.StatusServiceUnavailable)
	if busy.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	wantStatus(t, c.upload(a.URL, "two.txt", []byte("two")), http.StatusServiceUnavailable)

	pw.Write(raw[len(raw)/2:])
	pw.Close()
	wantStatus(t, <-done, http.StatusCreated)
	wantStatus(t, c.call("GET", a.URL+"/api/files/"+f.ID, nil), http.StatusOK)
}

// TestUploadTouchesNoDisk: uploads (API and page form) stream to PostgreSQL;
// nothing lands in $TMPDIR, where ParseMultipartForm and FormFile would spill.
func TestUploadTouchesNoDisk(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	a := newTestApp(t, appOptions{cfg: Config{MaxUploadBytes: 40 << 20}})
	c := newAgent(t)
	c.signupLogin(a.URL, "alice", "password1")
	// Larger than the 32 MiB that FormFile would keep in memory before spilling.
	data := bytes.Repeat([]byte("disk? "), (33<<20)/6)
	wantStatus(t, c.upload(a.URL, "api.bin", data), http.StatusCreated)
	body, ctype := multipartBody(t, "file", "page.bin", data[:1<<20]) // the same code path
	wantStatus(t, c.call("POST", a.URL+"/upload", body, "Content-Type", ctype), http.StatusSeeOther)
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("%d files in $TMPDIR after uploads, want none: %v", len(entries), entries)
	}
	if n := count(t, a.pool, "files WHERE state = 'ready'"); n != 2 {
		t.Errorf("%d files stored, want 2", n)
	}
}
