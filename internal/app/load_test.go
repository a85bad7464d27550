package app

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadUser is one user of a load: an agent logged in, with a file uploaded before the load
// (one chunk, so that a download either fails before its first byte or succeeds whole).
type loadUser struct {
	a        *agent
	name     string
	password string
	file     fileBody
	data     []byte
}

// newLoadUsers signs up and logs in n users on base, each with a file.
func newLoadUsers(t *testing.T, base string, n int) []*loadUser {
	t.Helper()
	var users []*loadUser
	for i := range n {
		u := &loadUser{a: newAgent(t), name: fmt.Sprintf("user%d", i), password: "password1", data: randomData(t, 100_000)}
		u.a.signupLogin(base, u.name, u.password)
		u.file = u.a.uploadFile(base, "before.bin", u.data)
		users = append(users, u)
	}
	return users
}

func randomData(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// loadResult is one request of a load.
type loadResult struct {
	op         string
	user       string
	start      time.Time
	took       time.Duration
	status     int    // 0 on a transport error
	err        error  // transport error, or a body that broke
	retryAfter string // of a 503
	jsonError  bool   // the body is {"error": ...}
	bodyOK     bool   // a download's bytes are the file's
	uploaded   fileBody
	listed     []fileBody
}

// loadOps is what each user does in a loop, in this order.
var loadOps = []string{"me", "list", "download", "upload", "me", "login"}

// load runs every user's loop against base until stop is closed, and returns every result.
func load(base string, users []*loadUser, stop <-chan struct{}) []loadResult {
	var mu sync.Mutex
	var all []loadResult
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Go(func() {
			var mine []loadResult
			for i := 0; ; i++ {
				select {
				case <-stop:
					mu.Lock()
					all = append(all, mine...)
					mu.Unlock()
					return
				default:
				}
				mine = append(mine, u.do(base, loadOps[i%len(loadOps)], i))
			}
		})
	}
	wg.Wait()
	sort.Slice(all, func(i, j int) bool { return all[i].start.Before(all[j].start) })
	return all
}

// do runs one operation and records what it saw.
func (u *loadUser) do(base, op string, i int) loadResult {
	var req *http.Request
	var upload []byte
	switch op {
	case "me":
		req, _ = http.NewRequest("GET", base+"/api/me", nil)
	case "list":
		req, _ = http.NewRequest("GET", base+"/api/files", nil)
	case "download":
		req, _ = http.NewRequest("GET", base+"/api/files/"+u.file.ID, nil)
	case "login":
		b, _ := json.Marshal(credentials{u.name, u.password})
		req, _ = http.NewRequest("POST", base+"/api/login", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
	case "upload": // two chunks and a bit
		upload = make([]byte, 2*256<<10+100)
		rand.Read(upload)
		var body bytes.Buffer
		ctype := writeMultipart(&body, fmt.Sprintf("up%d.bin", i), upload)
		req, _ = http.NewRequest("POST", base+"/api/files", &body)
		req.Header.Set("Content-Type", ctype)
	}
	r := loadResult{op: op, user: u.name, start: time.Now()}
	resp, err := u.a.client.Do(req)
	if err != nil {
		r.took, r.err = time.Since(r.start), err
		return r
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.took, r.status, r.err = time.Since(r.start), resp.StatusCode, err
	if resp.StatusCode == http.StatusServiceUnavailable {
		r.retryAfter = resp.Header.Get("Retry-After")
	}
	var e errorBody
	r.jsonError = json.Unmarshal(body, &e) == nil && e.Error != ""
	switch {
	case op == "download" && resp.StatusCode == http.StatusOK:
		r.bodyOK = bytes.Equal(body, u.data)
	case op == "upload" && resp.StatusCode == http.StatusCreated:
		json.Unmarshal(body, &r.uploaded)
		r.bodyOK = r.uploaded.SHA256 == sha256Hex(upload) && r.uploaded.Size == int64(len(upload))
	case op == "list" && resp.StatusCode == http.StatusOK:
		var files []listedFile
		json.Unmarshal(body, &files)
		for _, f := range files {
			r.listed = append(r.listed, f.fileBody)
		}
	}
	return r
}

// writeMultipart writes a form with one file field and returns its content type.
func writeMultipart(w io.Writer, name string, data []byte) string {
	mw := multipart.NewWriter(w)
	pw, _ := mw.CreateFormFile("file", name)
	pw.Write(data)
	mw.Close()
	return mw.FormDataContentType()
}

// okStatus is the success answer of each operation.
var okStatus = map[string]int{"me": 200, "list": 200, "download": 200, "upload": 201, "login": 200}

// checkLoad fails the test for any answer other than the operation's success or a 503 with
// Retry-After and a JSON error (no 500, no 401, no transport error, no broken body), and for
// any request that took longer than maxWait. It logs the figures.
func checkLoad(t *testing.T, results []loadResult, maxWait time.Duration) {
	t.Helper()
	counts := map[string]int{}
	var longest time.Duration
	var worst []string
	for _, r := range results {
		counts[fmt.Sprintf("%s %d", r.op, r.status)]++
		longest = max(longest, r.took)
		bad := ""
		switch {
		case r.err != nil:
			bad = fmt.Sprintf("error %v", r.err)
		case r.status == http.StatusServiceUnavailable && (r.retryAfter == "" || !r.jsonError):
			bad = fmt.Sprintf("503 without Retry-After or JSON error (Retry-After %q)", r.retryAfter)
		case r.status != http.StatusServiceUnavailable && r.status != okStatus[r.op]:
			bad = fmt.Sprintf("status %d", r.status)
		case (r.op == "download" || r.op == "upload") && r.status == okStatus[r.op] && !r.bodyOK:
			bad = "wrong bytes"
		case r.took > maxWait:
			bad = fmt.Sprintf("took %v, more than %v", r.took, maxWait)
		}
		if bad != "" && len(worst) < 20 {
			worst = append(worst, fmt.Sprintf("%s %s at %s: %s", r.user, r.op, r.start.Format("15:04:05.000"), bad))
		}
	}
	if len(worst) > 0 {
		t.Errorf("%d requests, bad answers:\n%s", len(results), strings.Join(worst, "\n"))
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s:%d", k, counts[k])
	}
	t.Logf("%d requests, longest %v; by operation and status:%s", len(results), longest.Round(time.Millisecond), b.String())
}

// unavailable returns the 503s among results and the longest wait among them.
func unavailableAnswers(results []loadResult) (n int, longest time.Duration) {
	for _, r := range results {
		if r.status == http.StatusServiceUnavailable {
			n++
			longest = max(longest, r.took)
		}
	}
	return n, longest
}

// checkAfterRecovery checks, with the database back, that every user is still logged in,
// that every upload acknowledged during the load (and each user's first file) downloads
// with the same sha256, and that every file a listing showed was whole (it downloads with
// the size and sha256 listed, unless deleted since: a failed upload's cleanup).
func checkAfterRecovery(t *testing.T, base string, users []*loadUser, results []loadResult) {
	t.Helper()
	byName := map[string]*loadUser{}
	for _, u := range users {
		byName[u.name] = u
		r := u.a.with(t).call("GET", base+"/api/me", nil)
		if r.StatusCode != http.StatusOK {
			t.Errorf("%s after recovery: /api/me %d, want 200 (still logged in)", u.name, r.StatusCode)
		}
	}
	acked, listed := 0, map[string]fileBody{}
	for _, r := range results {
		for _, f := range r.listed {
			listed[r.user+" "+f.ID] = f
		}
		if r.op != "upload" || r.status != http.StatusCreated {
			continue
		}
		acked++
		d := byName[r.user].a.with(t).call("GET", base+"/api/files/"+r.uploaded.ID, nil)
		if d.StatusCode != http.StatusOK || sha256Hex(d.Body) != r.uploaded.SHA256 {
			t.Errorf("%s: acknowledged upload %s: %d, sha256 %s; want 200 and %s", r.user, r.uploaded.ID, d.StatusCode, sha256Hex(d.Body), r.uploaded.SHA256)
		}
	}
	gone := 0
	for key, f := range listed {
		user, _, _ := strings.Cut(key, " ")
		d := byName[user].a.with(t).call("GET", base+"/api/files/"+f.ID, nil)
		switch {
		case d.StatusCode == http.StatusNotFound:
			gone++
		case d.StatusCode != http.StatusOK || int64(len(d.Body)) != f.Size || sha256Hex(d.Body) != f.SHA256:
			t.Errorf("listed file %s (%d bytes, %s) downloads as %d, %d bytes, %s: it was listed before it was whole",
				f.ID, f.Size, f.SHA256, d.StatusCode, len(d.Body), sha256Hex(d.Body))
		}
	}
	t.Logf("after recovery: %d users logged in, %d acknowledged uploads verified, %d listed files verified (%d deleted since)",
		len(users), acked, len(listed)-gone, gone)
}

// checkNothingLeft checks, once the app deleted the failed uploads it could not delete
// during the outage, that each user's files are exactly the first one and the uploads
// acknowledged with 201: an upload that answered 503 left nothing.
func checkNothingLeft(t *testing.T, a *testApp, users []*loadUser, results []loadResult) {
	t.Helper()
	if _, left, err := a.st.DeleteFailedUploads(t.Context()); err != nil || left != 0 {
		t.Fatalf("DeleteFailedUploads after recovery: %d left, %v", left, err)
	}
	acked := map[string]bool{}
	for _, r := range results {
		if r.op == "upload" && r.status == http.StatusCreated {
			acked[r.uploaded.ID] = true
		}
	}
	for _, u := range users {
		acked[u.file.ID] = true
		var files []listedFile
		r := u.a.with(t).call("GET", a.URL+"/api/files?limit=1000", nil)
		r.json(t, &files)
		for _, f := range files {
			if !acked[f.ID] {
				t.Errorf("%s has file %s (%s), whose upload was never acknowledged", u.name, f.ID, f.Name)
			}
		}
	}
}
