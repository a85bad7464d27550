// Command report turns the benchmark's per-run records (runs.tsv, written by
// bench/run.sh) into RESULTS.md: min/median/max per target and mode, ratios
// to direct and to each peer, and the targets of issues 6 and 13 checked against lb.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}
