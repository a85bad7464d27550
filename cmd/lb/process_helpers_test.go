package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"testing"
)

// runLBCommand runs the lb binary bin with args and env (added to a minimal
// environment without LB_ADMIN*) and returns its exit status and output.
func runLBCommand(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	default:
		t.Fatalf("lb %v: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

// freeLoopbackAddr returns a 127.0.0.1 address whose port was free a moment
// ago, for configs whose admin address a CLI must find in the file.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
