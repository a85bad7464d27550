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

failed=0
for pkg in $pkgs; do
	targets=$($GO test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
	for target in $targets; do
		echo "== $pkg $target ($fuzztime)"
		if ! $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -parallel "$parallel" "$pkg"; then
			failed=1
		fi
	done
done
exit "$failed"
