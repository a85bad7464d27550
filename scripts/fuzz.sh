#!/usr/bin/env bash
# Runs every Go fuzz target of the module for a bounded time each (go test runs their seed
# corpora on every test run; this explores beyond them). A failing input is written to the
# target's testdata/fuzz directory, where go test replays it from then on: commit it with
# the fix.
#
#   FUZZTIME      time per target (default 30s)
#   FUZZ_PARALLEL fuzzing workers per target (default 2: the machine is shared)
#   FUZZ_PKGS     packages to fuzz (default: every package with a Fuzz function)
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
fuzztime=${FUZZTIME:-30s}
parallel=${FUZZ_PARALLEL:-2}
pkgs=${FUZZ_PKGS:-$($GO list ./...)}

# inputs DIR: the failing inputs go test has written for one target.
inputs() { if [[ -d $1 ]]; then find "$1" -type f | sort; fi; }

failed=0
for pkg in $pkgs; do
	targets=$($GO test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
	dir=$($GO list -f '{{.Dir}}' "$pkg")
	for target in $targets; do
		echo "== $pkg $target ($fuzztime)"
		before=$(inputs "$dir/testdata/fuzz/$target")
		out=$(mktemp)
		if $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -parallel "$parallel" "$pkg" 2>&1 | tee "$out"; [[ ${PIPESTATUS[0]} == 0 ]]; then
			rm -f "$out"
			continue
		fi
		# Go 1.26's coordinator can end a run whose time is up with a bare "context deadline
		# exceeded" and no input (golang/go#75804): that is no finding, as long as no new
		# failing input was written.
		if [[ "$(inputs "$dir/testdata/fuzz/$target")" == "$before" ]] && grep -q '^    context deadline exceeded$' "$out"; then
			echo "== $pkg $target: the run ended on Go's fuzztime race (golang/go#75804), no failing input: not a finding"
		else
			failed=1
		fi
		rm -f "$out"
	done
done
exit "$failed"
