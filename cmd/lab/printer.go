package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// printer writes whole lines to out, one goroutine at a time.
type printer struct {
	mu  sync.Mutex
	out io.Writer
}

func newPrinter(out io.Writer) *printer { return &printer{out: out} }

func (p *printer) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format+"\n", args...)
}

// status prints a status line, stamped with the time.
func (p *printer) status(line string) {
	p.say("[%s] %s", time.Now().Format("15:04:05"), line)
}
