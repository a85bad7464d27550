package admin

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
)

//go:embed status.html
var statusHTML string

//go:embed assets
var assetsFS embed.FS

// statusCSP lets the page load only its own script and style, and talk only to this origin.
const statusCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (s *server) handleStatusPage() http.Handler {
	tmpl := template.Must(template.New("status").Parse(statusHTML))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", statusCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if err := tmpl.Execute(w, struct{ Version string }{s.opts.Version}); err != nil {
			s.logger.Error("admin: status page", "error", err.Error())
		}
	})
}

func (s *server) handleAssets() http.Handler {
	sub, err := fs.Sub(assetsFS, "assets")
	if err != nil {
		// The embedded tree always has the directory; this is unreachable.
		return http.NotFoundHandler()
	}
	files := http.StripPrefix("/assets/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
