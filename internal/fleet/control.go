package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// controlServer answers RestartCommand on a unix socket in the fleet's directory
// (mode 0700, so only the fleet's user reaches it).
type controlServer struct {
	path string
	tmp  string // a directory of its own when the fleet's path is too long for a socket
	srv  *http.Server
	done chan struct{}
}

func startControl(f *Fleet) (*controlServer, error) {
	path, tmp := filepath.Join(f.dir, "control.sock"), ""
	if len(path) > 100 { // sun_path is 108 bytes
		dir, err := os.MkdirTemp("", "fleetctl-")
		if err != nil {
			return nil, fmt.Errorf("control socket dir: %w", err)
		}
		path, tmp = filepath.Join(dir, "control.sock"), dir
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		if tmp != "" {
			_ = os.RemoveAll(tmp)
		}
		return nil, fmt.Errorf("control socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /restart", func(w http.ResponseWriter, r *http.Request) {
		name, version := r.FormValue("name"), r.FormValue("version")
		i := f.AppIndex(name)
		if i < 0 {
			http.Error(w, fmt.Sprintf("no app server named %q", name), http.StatusNotFound)
			return
		}
		binary := ""
		if version != "" {
			if binary = f.opts.AppVersions[version]; binary == "" {
				http.Error(w, fmt.Sprintf("no app version %q", version), http.StatusBadRequest)
				return
			}
		}
		f.apps[i].log.Note("control: restart with version %q", version)
		if err := f.RestartWith(r.Context(), i, binary); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s restarted as pid %d (%s), listening on %s\n", name, f.apps[i].Pid(), f.apps[i].Binary(), f.apps[i].Addr("app"))
	})
	c := &controlServer{
		path: path,
		tmp:  tmp,
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(c.done)
		_ = c.srv.Serve(ln)
	}()
	return c, nil
}

func (c *controlServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.srv.Shutdown(ctx)
	<-c.done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if c.tmp != "" {
		err = errors.Join(err, os.RemoveAll(c.tmp))
	}
	return err
}

// RequestRestart asks the fleet listening on the control socket to restart the app
// server name, with the binary registered as version in Options.AppVersions ("" keeps
// its binary), and waits until it listens again.
func RequestRestart(ctx context.Context, socket, name, version string) (string, error) {
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	form := url.Values{"name": {name}, "version": {version}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://fleet/restart", strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("restart %s: %w", name, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("restart %s: %w", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("restart %s: %w", name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("restart %s: %s", name, strings.TrimSpace(string(b)))
	}
	return strings.TrimSpace(string(b)), nil
}

// RestartCommand is a CMD for `lb rollout`: args are [SOCKET VERSION]; it restarts
// the app server named by $LB_BACKEND_NAME through the fleet's control socket.
// The e2e tests and cmd/demo run it as a subcommand of their own binary.
func RestartCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) != 2 {
		return errors.New("usage: restart SOCKET VERSION (backend name from $LB_BACKEND_NAME)")
	}
	name := getenv("LB_BACKEND_NAME")
	if name == "" {
		return errors.New("restart: LB_BACKEND_NAME is not set")
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	msg, err := RequestRestart(ctx, args[0], name, args[1])
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, msg)
	return nil
}
