package app

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func form(t *testing.T, c *agent, url, body string) response {
	t.Helper()
	return c.call("POST", url, body, "Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "same-origin")
}

func wantBody(t *testing.T, r response, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(string(r.Body), w) {
			t.Errorf("%s %s: page lacks %q", r.Request.Method, r.Request.URL.Path, w)
		}
	}
}

func wantRedirectHome(t *testing.T, r response) {
	t.Helper()
	wantStatus(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/" {
		t.Errorf("Location %q, want /", loc)
	}
}

func TestPages(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)

	r := c.call("GET", a.URL+"/", nil)
	wantStatus(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	wantBody(t, r, `action="/login"`, `action="/signup"`, "app-test", "v1.2.3-test")

	// Sign-up errors are shown on the page with a fitting status.
	r = form(t, c, a.URL+"/signup", "username=AB&password=password1")
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, "Sign-up refused")

	r = form(t, c, a.URL+"/signup", "username=alice&password=password1")
	wantRedirectHome(t, r)
	if sessionCookie(r) == nil {
		t.Fatal("sign-up did not log in")
	}
	r = form(t, c, a.URL+"/signup", "username=alice&password=password1")
	wantStatus(t, r, http.StatusConflict)

	r = c.call("GET", a.URL+"/", nil)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Signed in as <strong>alice</strong>", `action="/upload"`, `enctype="multipart/form-data"`, "No files yet", `action="/logout"`)

	body, ctype := multipartBody(t, "file", "<i>notes.txt", []byte("hello"))
	r = c.call("POST", a.URL+"/upload", body, "Content-Type", ctype, "Sec-Fetch-Site", "same-origin")
	wantRedirectHome(t, r)
	r = c.call("GET", a.URL+"/", nil)
	wantBody(t, r, "&lt;i&gt;notes.txt", "5 B")
	if strings.Contains(string(r.Body), "<i>notes") {
		t.Errorf("file name not escaped in the page")
	}
	link := regexp.MustCompile(`href="(/api/files/[0-9a-f-]{36})"`).FindStringSubmatch(string(r.Body))
	if link == nil {
		t.Fatalf("no download link in %s", r.Body)
	}
	d := c.call("GET", a.URL+link[1], nil)
	wantStatus(t, d, http.StatusOK)
	if string(d.Body) != "hello" {
		t.Errorf("downloaded %q", d.Body)
	}

	wantRedirectHome(t, form(t, c, a.URL+"/logout", ""))
	r = c.call("GET", a.URL+"/", nil)
	wantBody(t, r, `action="/login"`)
	if strings.Contains(string(r.Body), "Signed in") {
		t.Errorf("still signed in after logout")
	}

	r = form(t, c, a.URL+"/login", "username=alice&password=wrong-pass")
	wantStatus(t, r, http.StatusUnauthorized)
	wantBody(t, r, "Wrong username or password", `value="alice"`)
	wantRedirectHome(t, form(t, c, a.URL+"/login", "username=alice&password=password1"))
	wantBody(t, c.call("GET", a.URL+"/", nil), "Signed in as <strong>alice</strong>")

	// Uploading without a session.
	body, ctype = multipartBody(t, "file", "x.txt", []byte("x"))
	r = newAgent(t).call("POST", a.URL+"/upload", body, "Content-Type", ctype)
	wantStatus(t, r, http.StatusUnauthorized)

	wantStatus(t, c.call("GET", a.URL+"/nope", nil), http.StatusNotFound)
}
