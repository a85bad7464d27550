package app

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// waitFor polls cond every 10 ms until it is true or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// waitLogged waits for the request line of requestID and checks its status.
func waitLogged(t *testing.T, log *syncBuffer, requestID string, status int) {
	t.Helper()
	var line map[string]any
	waitFor(t, 10*time.Second, "the request log line of "+requestID, func() bool {
		for _, l := range log.lines(t, "request") {
			if l["request_id"] == requestID {
				line = l
				return true
			}
		}
		return false
	})
	if line["status"] != float64(status) {
		t.Errorf("%s: logged status %v, want %d", requestID, line["status"], status)
	}
}

// TestUploadAborted: a client that goes away in the middle of an upload
// leaves no file and no chunk behind, and the request is logged as 499.
func TestUploadAborted(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)
	c.signupLogin(a.URL, "alice", "password1")
	cookie := c.client.Jar.Cookies(mustURL(t, a.URL))[0]

	conn, err := tls.Dial("tcp", strings.TrimPrefix(a.URL, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const boundary = "b0undary"
	head := fmt.Sprintf("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.bin\"\r\n\r\n", boundary)
	fmt.Fprintf(conn, "POST /api/files HTTP/1.1\r\nHost: %s\r\nCookie: %s=%s\r\nX-Request-ID: aborted-upload\r\n"+
		"Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n%s",
		strings.TrimPrefix(a.URL, "https://"), cookie.Name, cookie.Value, boundary, 4<<20, head)
	conn.Write(bytes.Repeat([]byte("z"), 700<<10)) // more than two 256 KiB chunks
	waitFor(t, 10*time.Second, "chunks of the upload in the database", func() bool {
		return count(t, a.pool, "file_chunks") >= 2
	})
	conn.Close()

	waitFor(t, 10*time.Second, "the aborted upload to be deleted", func() bool {
		return count(t, a.pool, "files") == 0 && count(t, a.pool, "file_chunks") == 0
	})
	waitLogged(t, a.log, "aborted-upload", statusClientGone)
}

// TestDownloadAborted: a client that goes away in the middle of a download
// is logged as 499 and the server carries on.
func TestDownloadAborted(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)
	c.signupLogin(a.URL, "alice", "password1")
	f := c.uploadFile(a.URL, "big.bin", bytes.Repeat([]byte("d"), 8<<20))

	req := request(t, "GET", a.URL+"/api/files/"+f.ID, nil, "X-Request-ID", "aborted-download")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 1024))
	c.client.Transport.(*http.Transport).CloseIdleConnections()
	resp.Body.Close() // closes the connection: the body was not read to the end
	waitLogged(t, a.log, "aborted-download", statusClientGone)
	wantStatus(t, c.call("GET", a.URL+"/api/me", nil), http.StatusOK)
}
