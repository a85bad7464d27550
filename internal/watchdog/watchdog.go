// Package watchdog speaks systemd's service watchdog protocol: while a check of the
// program's own serving loops passes, it sends WATCHDOG=1 over $NOTIFY_SOCKET every half
// of $WATCHDOG_USEC; when the check fails it sends nothing, so systemd (WatchdogSec=)
// kills the frozen process with SIGABRT and Restart= starts it again. A process that is
// frozen as a whole (SIGSTOP, a stuck runtime) sends nothing either.
package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Config is what systemd passes in the environment.
type Config struct {
	// Socket is $NOTIFY_SOCKET: a path, or an abstract name starting with '@'.
	Socket string
	// Timeout is $WATCHDOG_USEC: systemd kills the service when no ping came for this long.
	Timeout time.Duration
}

// Interval is how often a ping is due: half the timeout, as sd_watchdog_enabled(3) advises.
func (c Config) Interval() time.Duration { return c.Timeout / 2 }

// FromEnv reads the watchdog settings. ok is false, with no error, when the service has no
// watchdog (WATCHDOG_USEC unset or no NOTIFY_SOCKET) or when WATCHDOG_PID names another
// process (the pings are for systemd's main process only).
func FromEnv(getenv func(string) string, pid int) (cfg Config, ok bool, err error) {
	usec, socket := getenv("WATCHDOG_USEC"), getenv("NOTIFY_SOCKET")
	if usec == "" || socket == "" {
		return Config{}, false, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return Config{}, false, fmt.Errorf("WATCHDOG_PID=%q: not a number", p)
		}
		if n != pid {
			return Config{}, false, nil
		}
	}
	n, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || n == 0 {
		return Config{}, false, fmt.Errorf("WATCHDOG_USEC=%q: want a positive number of microseconds", usec)
	}
	return Config{Socket: socket, Timeout: time.Duration(n) * time.Microsecond}, true, nil
}

// Notify sends one sd_notify message (e.g. "WATCHDOG=1") to socket.
func Notify(socket, state string) error {
	name := socket
	if name[0] == '@' {
		name = "\x00" + name[1:] // abstract namespace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify socket %s: %w", socket, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify %s: %w", socket, err)
	}
	return nil
}

// Check reports whether the serving loops made progress since its last call; it is called
// once per interval, from one goroutine. A non-nil error withholds that interval's ping.
type Check func(ctx context.Context) error

// Run pings every cfg.Interval() while check passes, until ctx ends. It logs when the
// check starts failing (naming the cause) and when it passes again, not on every tick.
func Run(ctx context.Context, cfg Config, check Check, logger *slog.Logger) {
	every := cfg.Interval()
	logger.Info("systemd watchdog on", "timeout", cfg.Timeout.String(), "ping_every", every.String())
	t := time.NewTicker(every)
	defer t.Stop()
	var failing error
	for {
		err := check(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && failing == nil:
			logger.Error("watchdog: no progress, pings withheld: systemd restarts this process once WatchdogSec passes without one",
				"err", err.Error(), "timeout", cfg.Timeout.String())
		case err == nil && failing != nil:
			logger.Warn("watchdog: progress again, pings resumed")
		}
		failing = err
		if err == nil {
			if nerr := Notify(cfg.Socket, "WATCHDOG=1"); nerr != nil && !errors.Is(nerr, context.Canceled) {
				logger.Warn("watchdog ping not sent", "err", nerr.Error())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
