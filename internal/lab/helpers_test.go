package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// helperEnv makes the test binary a helper process instead of running tests:
// "echo ADDR" serves a line echo on ADDR; "sleep" waits to be killed.
const helperEnv = "LAB_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

func runHelper(mode string) int {
	fmt.Printf("helper %s: uid %d\n", mode, os.Getuid())
	verb, arg, _ := strings.Cut(mode, " ")
	switch verb {
	case "echo":
		ln, err := net.Listen("tcp", arg)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("listening")
		serveEcho(ln)
	case "sleep":
		select {}
	}
	return 2
}

// serveEcho answers each line of each connection with the same line.
func serveEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if _, err := c.Write([]byte(line)); err != nil {
					return
				}
			}
		}()
	}
}

// startEcho starts the test binary as an echo server process on h's port 7000, and waits
// until it listens.
func startEcho(t *testing.T, h *Host) *Proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.Start(t.Context(), ProcSpec{Name: "echo", Argv: []string{exe}, Env: []string{helperEnv + "=echo :7000"}})
	if err != nil {
		t.Fatal(err)
	}
	lbtest.WaitFor(t, 10*time.Second, "echo server listening", func() bool { return strings.Contains(p.Log(), "listening") })
	return p
}

// listenEcho serves a line echo in-process on h's port, until the test ends.
func listenEcho(t *testing.T, h *Host, port string) {
	t.Helper()
	ln, err := h.Listen("tcp", ":"+port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveEcho(ln)
}

// roundTrip dials to (an ip:port) from h within timeout, sends a line and reads it back.
func roundTrip(h *Host, to string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := h.DialContext(ctx, "tcp", to)
	if err != nil {
		return err
	}
	defer c.Close()
	return echoOnce(c, timeout)
}

func echoOnce(c net.Conn, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return fmt.Errorf("echo: got %q", line)
	}
	return nil
}

// isTimeout reports whether err is a timeout (no answer), as opposed to a refusal or reset.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func addr(h *Host, port string) string { return net.JoinHostPort(h.Addr().String(), port) }
