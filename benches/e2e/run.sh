#!/usr/bin/env bash
# End-to-end cost of the server-side stacks: an axum server on loopback (examples/e2e_server.rs),
# driven by wrk, bare router vs steadfast's stack vs tower's built-ins vs tower-resilience.
#
#   bash benches/e2e/run.sh [rounds] [seconds per run]     (defaults: 5 rounds of 5 s)
#
# Server and client are pinned to different cores (server on the last core, wrk on core 0), the
# stacks are interleaved round by round so that drift in the machine's speed falls on all of them,
# and each figure is the median over the rounds. Reported as ratios to the bare router in the same
# rounds. Loopback only; every run stops by itself. Needs wrk (installed with apt-get when missing
# and running as root).
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=${1:-5}
seconds=${2:-5}
stacks=(bare steadfast tower tower-resilience)
port=38080
cores=$(nproc)
server_core=$((cores - 1))

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null; else
    echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; fi
fi

cargo build --quiet --release --all-features --example e2e_server
server=target/release/examples/e2e_server
results=$(mktemp)
trap 'rm -f "$results"; kill "${pid:-}" 2>/dev/null || true' EXIT

# wrk's latency in microseconds.
to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    if (u == "us") print n; else if (u == "ms") print n * 1000; else if (u == "s") print n * 1000000; else print n }'
}

for round in $(seq "$rounds"); do
  for stack in "${stacks[@]}"; do
    taskset -c "$server_core" "$server" "$stack" "$port" 2>/dev/null &
    pid=$!
    for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    # A short warm-up, then the measured run.
    taskset -c 0 wrk -t1 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null
    out=$(taskset -c 0 wrk -t1 -c64 -d"${seconds}s" --latency "http://127.0.0.1:$port/")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(to_us "$(echo "$out" | awk '$1 == "99%" {print $2}')")
    errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
    echo "$stack $rps $p99" >> "$results"
    printf 'round %s  %-17s %10.0f req/s  p99 %8.0f us %s\n' "$round" "$stack" "$rps" "$p99" "$errors"
  done
done

echo
echo "median over $rounds rounds of ${seconds}s (wrk -t1 -c64; server on core $server_core, wrk on core 0):"
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
bare_rps=$(awk '$1 == "bare" {print $2}' "$results" | median)
bare_p99=$(awk '$1 == "bare" {print $3}' "$results" | median)
printf '%-17s %12s %8s %10s %8s\n' stack req/s ratio "p99 us" ratio
for stack in "${stacks[@]}"; do
  rps=$(awk -v s="$stack" '$1 == s {print $2}' "$results" | median)
  p99=$(awk -v s="$stack" '$1 == s {print $3}' "$results" | median)
  awk -v s="$stack" -v r="$rps" -v p="$p99" -v br="$bare_rps" -v bp="$bare_p99" \
    'BEGIN { printf "%-17s %12.0f %8.3f %10.0f %8.3f\n", s, r, r / br, p, p / bp }'
done
