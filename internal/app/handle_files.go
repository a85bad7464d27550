package app

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"outrigger/internal/app/store"
	"outrigger/internal/logging"
)

// sniffLen is how much of an upload http.DetectContentType looks at.
const sniffLen = 512

// statusClientGone is what the request log shows for a client that went away.
const statusClientGone = 499

// fileBody is the JSON of an uploaded file, exactly DESIGN's
// {"id","name","size","sha256","content_type"}.
type fileBody struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	ContentType string `json:"content_type"`
}

// listedFile is an entry of GET /api/files: the file and when it was uploaded.
type listedFile struct {
	fileBody
	Created time.Time `json:"created"`
}

func newFileBody(f store.File) fileBody {
	return fileBody{ID: f.ID, Name: f.Name, Size: f.Size, SHA256: f.SHA256, ContentType: f.ContentType}
}

// handleUpload: multipart field "file"; 201 with the file; 413 over the limit, nothing kept.
func handleUpload(cfg Config, logger *slog.Logger, st *store.Store, ss *sessionStore, tr *slots) http.Handler {
	return ss.require(logger, func(w http.ResponseWriter, r *http.Request, user store.User) {
		f, err := receiveUpload(w, r, cfg, st, tr, user)
		if err != nil {
			writeUploadError(w, r, logger, err)
			return
		}
		encode(w, http.StatusCreated, newFileBody(f))
	})
}

// writeUploadError answers a failed upload: 400, 413 or 503.
func writeUploadError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	if r.Context().Err() != nil || errors.Is(err, io.ErrUnexpectedEOF) {
		// The client went away (or cut its body short); nobody reads the answer.
		logging.SetStatus(r.Context(), statusClientGone)
	}
	var re *requestError
	switch {
	case errors.As(err, &re):
		writeError(w, re.Status, re.Msg)
	case errors.Is(err, errNoSlot):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "too many transfers at once, try again")
	case r.Context().Err() != nil:
		writeError(w, http.StatusBadRequest, "upload interrupted")
	default:
		unavailable(w, r, logger, "upload", err)
	}
}

// bodyReader remembers the error reading the request body gave, so that a
// failed upload can be blamed on the client (400/413) or the database (503).
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
		err = fmt.Errorf("read upload: %w", err)
	}
	return n, err
}

// bodyError turns a request body read error into a *requestError.
func bodyError(err error, limit int64) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &requestError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("upload over %d bytes", limit), Err: err}
	}
	return &requestError{Status: http.StatusBadRequest, Msg: "reading upload: " + err.Error(), Err: err}
}

// receiveUpload streams the "file" part of a multipart body into the store.
// Nothing touches the disk: the body is read with MultipartReader (never
// ParseMultipartForm or FormFile, which spill to $TMPDIR) behind
// MaxBytesReader.
func receiveUpload(w http.ResponseWriter, r *http.Request, cfg Config, st *store.Store, tr *slots, user store.User) (store.File, error) {
	limit := cfg.MaxUploadBytes
	if r.ContentLength > limit {
		return store.File{}, bodyError(&http.MaxBytesError{Limit: limit}, limit)
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	mr, err := r.MultipartReader()
	if err != nil {
		return store.File{}, &requestError{Status: http.StatusBadRequest, Msg: "multipart/form-data body with a \"file\" field required"}
	}
	var part *multipart.Part
	for part == nil {
		p, err := mr.NextPart()
		switch {
		case err == io.EOF:
			return store.File{}, &requestError{Status: http.StatusBadRequest, Msg: "no \"file\" field in the form"}
		case err != nil:
			return store.File{}, bodyError(err, limit)
		case p.FormName() == "file":
			part = p
		default: // another field: skipped
			if _, err := io.Copy(io.Discard, p); err != nil {
				return store.File{}, bodyError(err, limit)
			}
		}
	}

	if err := tr.acquire(r.Context()); err != nil {
		return store.File{}, err
	}
	defer tr.release()
	body := &bodyReader{r: part}
	br := bufio.NewReaderSize(body, 4096)
	head, _ := br.Peek(sniffLen) // a short file, or a read error that body.err holds
	if body.err != nil {
		return store.File{}, bodyError(body.err, limit)
	}
	f, err := st.CreateFile(r.Context(), user.ID, cleanName(part.FileName()), sniffType(head), br)
	switch {
	case err != nil && body.err != nil:
		return store.File{}, bodyError(body.err, limit)
	case err != nil:
		return store.File{}, err
	}
	return f, nil
}

// handleListFiles: 200 with the caller's files, ?after=ID&limit=N.
func handleListFiles(logger *slog.Logger, st *store.Store, ss *sessionStore) http.Handler {
	return ss.require(logger, func(w http.ResponseWriter, r *http.Request, user store.User) {
		after, limit, err := pageParams(r)
		if err != nil {
			writeRequestError(w, err)
			return
		}
		files, err := st.ListFiles(r.Context(), user.ID, after, limit)
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusBadRequest, "after: not one of your files")
			return
		}
		if err != nil {
			unavailable(w, r, logger, "list files", err)
			return
		}
		out := make([]listedFile, 0, len(files))
		for _, f := range files {
			out = append(out, listedFile{newFileBody(f), f.CreatedAt.UTC()})
		}
		encode(w, http.StatusOK, out)
	})
}

// pageParams reads ?after=ID&limit=N.
func pageParams(r *http.Request) (after string, limit int, err error) {
	q := r.URL.Query()
	after = q.Get("after")
	limit = store.DefaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxListLimit {
			return "", 0, &requestError{Status: http.StatusBadRequest, Msg: fmt.Sprintf("limit must be 1 to %d", store.MaxListLimit)}
		}
		limit = n
	}
	return after, limit, nil
}

// handleDownload: the bytes as an attachment; 404 if missing or not the caller's.
// The download headers go out with the first chunk: a database failure before
// it is a clean JSON 503, not a 200 cut short.
func handleDownload(cfg Config, logger *slog.Logger, st *store.Store, ss *sessionStore, tr *slots) http.Handler {
	return ss.require(logger, func(w http.ResponseWriter, r *http.Request, user store.User) {
		f, err := st.GetFile(r.Context(), user.ID, r.PathValue("id"))
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeError(w, http.StatusNotFound, "no such file")
			return
		case err != nil:
			unavailable(w, r, logger, "file info", err)
			return
		}
		h := w.Header()
		etag := `"` + f.SHA256 + `"`
		h.Set("ETag", etag)
		h.Set("Cache-Control", "private, no-cache")
		if etagMatch(r.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if err := tr.acquire(r.Context()); err != nil {
			h.Del("ETag")
			h.Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "too many transfers at once, try again")
			return
		}
		defer tr.release()
		dl := &download{ResponseWriter: w, f: f}
		if r.Method == http.MethodHead {
			dl.start()
			return
		}
		if cfg.beforeCopy != nil {
			cfg.beforeCopy()
		}
		_, err = st.CopyFileTo(r.Context(), dl, f)
		switch {
		case err == nil:
			dl.start() // an empty file: no Write
		case r.Context().Err() != nil:
			logging.SetStatus(r.Context(), statusClientGone)
		case !dl.started:
			// Nothing went out yet: answer the failure properly.
			h.Del("ETag")
			h.Del("Cache-Control")
			unavailable(w, r, logger, "download", err)
		default:
			// Headers are gone; the short body (Content-Length) tells the client.
			logger.LogAttrs(r.Context(), slog.LevelError, "download failed",
				slog.String("request_id", requestID(r)), slog.String("file", f.ID), slog.Any("err", err))
		}
	})
}

// download sets a file's download headers (DESIGN: attachment, nosniff, CSP
// sandbox, Content-Length) just before its first byte is written.
type download struct {
	http.ResponseWriter
	f       store.File
	started bool
}

// start sets the download headers; the status (200) goes with the first Write.
func (d *download) start() {
	if d.started {
		return
	}
	d.started = true
	h := d.Header()
	h.Set("Content-Type", d.f.ContentType)
	h.Set("Content-Disposition", attachment(d.f.Name))
	h.Set("Content-Length", strconv.FormatInt(d.f.Size, 10))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
}

func (d *download) Write(p []byte) (int, error) {
	d.start()
	return d.ResponseWriter.Write(p)
}

// etagMatch reports whether an If-None-Match header matches etag.
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
