#!/usr/bin/env bash
# The herd primary itself, JIT'd (the dotnet tool) against Native AOT (build/publish-aot.sh), side by side in one run:
#  - start to ready: from bash exec'ing `herd run -i 1` to its first worker running, timed by the worker's first
#    instruction (bash writing $EPOCHREALTIME). herd has its control socket listening by then: it listens before it
#    spawns. A bare `bash -c` start is timed too (the "bash" row): it is in both figures, herd's own is the rest.
#  - RSS: herd's VmRSS after N connections (Connection: close, wrk -t1 -c50) through round robin to two PlainWebApp
#    workers (logging at Warning, so herd forwards no per-request lines).
#   bench/primary.sh [--rounds R] [--starts S] [--connections N]    (default 3 rounds, 20 starts a mode, N=100000)
# Modes alternate within each round, so a busy machine slows both alike; every figure is printed, not only medians.
# Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 starts=20 connections=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --starts) starts="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    *) echo "primary.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if ! command -v wrk >/dev/null; then
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi
dotnet build src/Herd.Cli -c Release -nologo -v q >/dev/null
dotnet build samples/PlainWebApp -c Release -nologo -v q >/dev/null
build/publish-aot.sh >/dev/null
app=samples/PlainWebApp/bin/Release/net10.0/PlainWebApp.dll
declare -A herd=([jit]="dotnet src/Herd.Cli/bin/Release/net10.0/Herd.Cli.dll" [aot]="artifacts/herd-aot/herd")
port=${BENCH_PORT:-18400}
work=$(mktemp -d)
primary=""
stop() {
  [ -n "$primary" ] && kill -TERM "$primary" 2>/dev/null && while kill -0 "$primary" 2>/dev/null; do sleep 0.05; done
  primary=""
}
trap 'stop; rm -rf "$work"' EXIT
export XDG_RUNTIME_DIR="$work" # each herd's control socket in a folder of its own, not the user's

# ms from exec to the worker's first instruction; the worker only sleeps, herd is stopped once it has run.
start_ms() { # mode
  local mark="$work/mark" t0
  rm -f "$mark"
  t0=$EPOCHREALTIME
  if [ "$1" = bash ]; then
    bash -c "echo \$EPOCHREALTIME >$mark"
  else
    ${herd[$1]} run -i 1 --name "start-$1" -- bash -c "echo \$EPOCHREALTIME >$mark; exec sleep 30" >/dev/null 2>&1 &
    primary=$!
  fi
  while [ ! -s "$mark" ]; do sleep 0.002; done
  stop
  echo "$(<"$mark") $t0" | awk '{printf "%.1f", ($1 - $2) * 1000}'
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$primary/status"; }

soak() { # mode: writes "baseline_kb after_kb connections seconds" to $work/soak
  Logging__LogLevel__Default=Warning ${herd[$1]} run -i 2 --name "soak-$1" -- dotnet "$app" --urls "http://127.0.0.1:$port" >/dev/null 2>&1 &
  primary=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.05; done
  local baseline done_conns=0 n t0=$EPOCHREALTIME
  baseline=$(rss_kb)
  while (( done_conns < connections )); do
    n=$(wrk -t1 -c50 -d2s -H "Connection: close" "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
    done_conns=$(( done_conns + n ))
  done
  echo "$baseline $(rss_kb) $done_conns $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')" >"$work/soak"
  stop
}

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
for round in $(seq "$rounds"); do
  for mode in jit aot; do
    soak "$mode"
    read -r base after conns secs <"$work/soak"
    echo "round $round $mode: RSS $(( base / 1024 )).$(( base % 1024 * 10 / 1024 )) MB at start, $(( after / 1024 )).$(( after % 1024 * 10 / 1024 )) MB after $conns connections (${secs} s)" | tee -a "$work/rss"
  done
done
for mode in bash jit aot; do : >"$work/start-$mode"; done
for i in $(seq "$starts"); do
  for mode in bash jit aot; do start_ms "$mode" >>"$work/start-$mode"; echo >>"$work/start-$mode"; done
done
for mode in bash jit aot; do
  echo "start to first worker, $mode (ms): median $(median <"$work/start-$mode"), all: $(sort -n "$work/start-$mode" | tr '\n' ' ')"
done
echo "machine: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
