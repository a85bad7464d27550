package app

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"

	"outrigger/internal/app/store"
	"outrigger/internal/clientip"
)

//go:embed ui/*.html
var uiFiles embed.FS

// maxFormBytes bounds the body of the login, signup and logout forms.
const maxFormBytes = 16 << 10

// pages renders the HTML pages for people.
type pages struct {
	cfg    Config
	logger *slog.Logger
	tmpl   *template.Template
}

// pageData is what page.html shows.
type pageData struct {
	Instance, Version string
	User              string // "" when nobody is logged in
	Username          string // to refill the login form
	Files             []pageFile
	Next              string // id to continue the list after
	Error             string
	MaxUpload         string
}

type pageFile struct {
	ID, Name, Size, ContentType, Created string
}

func newPages(cfg Config, logger *slog.Logger) *pages {
	// The template is part of the binary: a parse error is a build mistake
	// that every test of the pages catches.
	t := template.Must(template.ParseFS(uiFiles, "ui/page.html"))
	return &pages{cfg: cfg, logger: logger, tmpl: t}
}

// render writes page.html with status.
func (p *pages) render(w http.ResponseWriter, r *http.Request, status int, d pageData) {
	d.Instance, d.Version, d.MaxUpload = p.cfg.Instance, p.cfg.Version, byteSize(p.cfg.MaxUploadBytes)
	var buf bytes.Buffer
	if err := p.tmpl.ExecuteTemplate(&buf, "page.html", d); err != nil {
		p.logger.Error("render page", "request_id", requestID(r), "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail renders the page with an error message; a database error is logged
// and shown as 503.
func (p *pages) fail(w http.ResponseWriter, r *http.Request, status int, user, msg string) {
	p.render(w, r, status, pageData{User: user, Error: msg})
}

func (p *pages) unavailable(w http.ResponseWriter, r *http.Request, user, what string, err error) {
	logFailure(r, p.logger, what, err)
	w.Header().Set("Retry-After", "1")
	p.fail(w, r, http.StatusServiceUnavailable, user, "The service is unavailable right now. Please try again in a moment.")
}

// seeOther ends a successful form post.
func seeOther(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// handlePageIndex: GET / shows the forms, or the caller's files.
func handlePageIndex(p *pages, st *store.Store, ss *sessionStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok, err := ss.current(w, r)
		if err != nil {
			p.unavailable(w, r, "", "load session", err)
			return
		}
		if !ok {
			p.render(w, r, http.StatusOK, pageData{})
			return
		}
		after, limit, err := pageParams(r)
		if err != nil {
			after, limit = "", store.DefaultListLimit
		}
		files, err := st.ListFiles(r.Context(), user.ID, after, limit+1)
		if errors.Is(err, store.ErrNotFound) { // a stale ?after=
			files, err = st.ListFiles(r.Context(), user.ID, "", limit+1)
		}
		if err != nil {
			p.unavailable(w, r, user.Username, "list files", err)
			return
		}
		d := pageData{User: user.Username}
		if len(files) > limit {
			files = files[:limit]
			d.Next = files[limit-1].ID
		}
		for _, f := range files {
			d.Files = append(d.Files, pageFile{ID: f.ID, Name: f.Name, Size: byteSize(f.Size),
				ContentType: f.ContentType, Created: f.CreatedAt.UTC().Format("2006-01-02 15:04 UTC")})
		}
		p.render(w, r, http.StatusOK, d)
	})
}

// formCredentials reads username and password from a urlencoded form.
func formCredentials(w http.ResponseWriter, r *http.Request) (credentials, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return credentials{}, err
	}
	return credentials{Username: r.PostForm.Get("username"), Password: r.PostForm.Get("password")}, nil
}

// handlePageSignup: POST /signup creates the account and logs it in.
func handlePageSignup(p *pages, acc *accounts, ss *sessionStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := formCredentials(w, r)
		if err != nil {
			p.fail(w, r, http.StatusBadRequest, "", "The form could not be read.")
			return
		}
		if msg := checkCredentials(c.Username, c.Password); msg != "" {
			p.fail(w, r, http.StatusBadRequest, "", "Sign-up refused: "+msg+".")
			return
		}
		switch err := acc.signup(r.Context(), c.Username, c.Password); {
		case errors.Is(err, store.ErrUsernameTaken):
			p.fail(w, r, http.StatusConflict, "", "That username is taken.")
			return
		case err != nil:
			p.unavailable(w, r, "", "signup", err)
			return
		}
		user, err := acc.st.UserByUsername(r.Context(), c.Username)
		if err == nil {
			err = ss.start(w, r, user)
		}
		if err != nil {
			p.unavailable(w, r, "", "start session", err)
			return
		}
		seeOther(w, r)
	})
}

// handlePageLogin: POST /login.
func handlePageLogin(p *pages, ips *clientip.Resolver, acc *accounts, ss *sessionStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := formCredentials(w, r)
		if err != nil {
			p.fail(w, r, http.StatusBadRequest, "", "The form could not be read.")
			return
		}
		user, err := acc.login(r.Context(), ips.ClientIP(r), c.Username, c.Password)
		var limited *limitedError
		switch {
		case errors.As(err, &limited):
			w.Header().Set("Retry-After", fmt.Sprint(limited.retryAfterSeconds()))
			p.render(w, r, http.StatusTooManyRequests, pageData{Username: c.Username,
				Error: fmt.Sprintf("Too many failed logins. Try again in %d seconds.", limited.retryAfterSeconds())})
			return
		case errors.Is(err, errBadCredentials):
			p.render(w, r, http.StatusUnauthorized, pageData{Username: c.Username, Error: "Wrong username or password."})
			return
		case err != nil:
			p.unavailable(w, r, "", "login", err)
			return
		}
		if err := ss.start(w, r, user); err != nil {
			p.unavailable(w, r, "", "start session", err)
			return
		}
		seeOther(w, r)
	})
}

// handlePageLogout: POST /logout.
func handlePageLogout(p *pages, ss *sessionStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := ss.end(w, r); err != nil {
			p.unavailable(w, r, "", "end session", err)
			return
		}
		seeOther(w, r)
	})
}

// handlePageUpload: POST /upload, the form's file field.
func handlePageUpload(cfg Config, p *pages, st *store.Store, ss *sessionStore, tr *slots) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok, err := ss.current(w, r)
		switch {
		case err != nil:
			p.unavailable(w, r, "", "load session", err)
			return
		case !ok:
			p.fail(w, r, http.StatusUnauthorized, "", "Please log in first.")
			return
		}
		_, err = receiveUpload(w, r, cfg, st, tr, user)
		var re *requestError
		switch {
		case errors.As(err, &re):
			p.fail(w, r, re.Status, user.Username, "Upload refused: "+re.Msg+".")
		case errors.Is(err, errNoSlot):
			w.Header().Set("Retry-After", "1")
			p.fail(w, r, http.StatusServiceUnavailable, user.Username, "Too many transfers at once; please try again.")
		case err != nil:
			p.unavailable(w, r, user.Username, "upload", err)
		default:
			seeOther(w, r)
		}
	})
}

// byteSize prints n bytes for people: 512 B, 1.5 KiB, 32 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := fmt.Sprintf("%.1f", v)
	if v == float64(int64(v)) {
		s = fmt.Sprintf("%d", int64(v))
	}
	return s + " " + string("KMGTP"[exp]) + "iB"
}
