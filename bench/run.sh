#!/usr/bin/env bash
# Herd against Node's cluster, single-process Kestrel and the machine's limit (a C server), measured side by side in one
# run; then round robin against least busy with one worker slowed down, fairness, the primary's memory, the handoff, and
# a reload under load.
#   bench/run.sh           3 alternating rounds of 5 s per mode and kind, each mode warmed until two 3 s rounds agree
#                          within 5% (about 25 minutes); writes docs/benchmarks.md (every round, spreads, ratios, chart)
#   bench/run.sh --quick   a smoke run of the same pipeline in a minute or two; prints its report, writes no docs
#   bench/run.sh --sticky  what the sticky policy's peek at each new connection costs against plain round robin
#                          (about a minute); prints the figures, writes no docs
# Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 seconds=5 conns=50 shares=10000 soak=100000 fair=(node-rr node-none herd-rr herd-shared herd-reuseport)
warm_round=3 warm_cap=10 window=30 quick=0
modes=(limit node-rr node-none node-single kestrel-single kestrel-tuned herd-rr herd-shared herd-reuseport herd-sticky)
# --quick: the modes the goals compare, 1 s each, and servers killed rather than stopped gracefully (ASP.NET Core takes
# about 1.5 s to stop, Herd or not): a smoke run of the whole pipeline, not figures to quote.
if [[ "${1:-}" == "--quick" ]]; then
  rounds=1 seconds=1 warm_round=1 warm_cap=2 window=4 shares=2000 soak=5000 fair=(herd-rr) quick=1
  modes=(limit node-rr kestrel-single kestrel-tuned herd-rr herd-shared)
fi
sticky=0
if [[ "${1:-}" == "--sticky" ]]; then
  rounds=1 seconds=5 sticky=1
fi
port=${BENCH_PORT:-18300}
results=$(mktemp -d)
trap 'stop_server; rm -rf "$results"' EXIT

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need node; then
  echo "installing wrk and node from Debian's packages..." >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk nodejs >/dev/null
fi

dotnet build samples/HelloCluster -c Release -nologo -v q >/dev/null
dotnet build bench/Bench -c Release -nologo -v q >/dev/null
dotnet build src/Herd.Cli -c Release -nologo -v q >/dev/null
gcc -O2 -o "$results/limit" bench/limit/limit.c
hello="dotnet samples/HelloCluster/bin/Release/net10.0/HelloCluster.dll --port $port"
# What Herd's primary gives every worker it starts (Primary/WorkerRuntime.cs), given to a single Kestrel too, so that
# the comparison is between clustering and not, with the same runtime settings.
tuned="env DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0"
bench="dotnet bench/Bench/bin/Release/net10.0/Bench.dll"
# Two workers, worker 1 ten times slower: each request waits 5 ms (50 ms on worker 1), at most 8 at a time per worker.
slow="--workers 2 --delay 5 --concurrency 8 --slow-worker 10"
echo "$slow" >"$results/slow"

declare -A command=(
  [node-rr]="env NODE_CLUSTER_SCHED_POLICY=rr node bench/node/cluster.js --port $port --workers 2"
  [node-none]="env NODE_CLUSTER_SCHED_POLICY=none node bench/node/cluster.js --port $port --workers 2"
  [node-single]="node bench/node/cluster.js --port $port --workers 0"
  [limit]="$results/limit --port $port --processes $(nproc)"
  [kestrel-single]="$hello --workers 0"
  [kestrel-tuned]="$tuned $hello --workers 0"
  [herd-rr]="env HERD_SCHED_POLICY=rr $hello --workers 2"
  [herd-shared]="env HERD_SCHED_POLICY=none $hello --workers 2"
  [herd-reuseport]="$hello --workers 2 --reuseport"
  [herd-sticky]="env HERD_SCHED_POLICY=sticky $hello --workers 2"
  [slow-rr]="env HERD_SCHED_POLICY=rr $hello $slow"
  [slow-leastbusy]="env HERD_SCHED_POLICY=leastbusy $hello $slow"
)
# Connection: close only: wrk opens its keep-alive connections once, while both workers are idle, so either policy
# splits them evenly; least busy chooses a worker for each new connection.
slow_modes=(slow-rr slow-leastbusy)

server=""
start_server() {
  $1 >"$results/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    sleep 0.05
  done
  echo "server did not come up: $1" >&2; cat "$results/server.log" >&2; return 1
}
# SIGTERM to the primary (Herd disconnects its workers; Node's exit when their channel closes; --quick skips it), then make sure
# nothing of it still holds the port before the next mode starts.
stop_server() {
  [[ -n "$server" ]] || return 0
  if (( ! quick )); then
    kill -TERM "$server" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.05; done
  fi
  pkill -KILL -f -- "--port $port" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" || return 0; sleep 0.05; done
  echo "port $port still answers after stopping the server" >&2; return 1
}

# Every mode is warmed up before it is measured: .NET's tiered JIT compiles the hot path again, optimised, in the
# background, and under a load that saturates both cores that takes seconds (a fresh two-worker cluster once served
# 6,200, 8,000, 8,300, 9,000 and 10,500 req/s in its first five 5 s runs). Rounds of $warm_round s of Connection: close
# until two in a row agree within 5%, at most $warm_cap of them; how many it took is reported.
warm_up() { # mode
  local previous=0 rps n
  for n in $(seq 1 "$warm_cap"); do
    rps=$(wrk -t1 -c"$conns" -d"${warm_round}s" -H "Connection: close" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {printf "%d", $2}')
    if (( previous > 0 )) && awk -v a="$previous" -v b="$rps" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.05 * (a > b ? a : b)) }'; then break; fi
    previous=$rps
  done
  echo "$1 $n" >>"$results/warm"
}

# One wrk run; appends "mode kind rps p50_ms p99_ms" to results.
measure() { # mode kind
  local header=()
  [[ $2 == close ]] && header=(-H "Connection: close")
  local out
  out=$(wrk -t1 -c"$conns" -d"${seconds}s" --latency "${header[@]}" "http://127.0.0.1:$port/")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "$1 $2 $rps $p50 $p99" >>"$results/runs"
  printf '  %-15s %-10s %10s req/s  p50 %-8s p99 %s\n' "$1" "$2" "$rps" "$p50" "$p99" >&2
}

# --sticky: every new connection is peeked (Connection: close), against round robin's; keep-alive shows the rest.
if (( sticky )); then
  for round in $(seq 1 "$rounds"); do
    for mode in herd-rr herd-sticky; do
      start_server "${command[$mode]}"
      warm_up "$mode"
      measure "$mode" close
      measure "$mode" keepalive
      stop_server
    done
  done
  awk '{ n[$1" "$2]++; rps[$1" "$2] += $3 } END { for (k in n) printf "%-22s %10.0f req/s\n", k, rps[k] / n[k] }' "$results/runs" | sort
  exit 0
fi

for round in $(seq 1 "$rounds"); do
  echo "round $round of $rounds" >&2
  for mode in "${modes[@]}"; do
    start_server "${command[$mode]}"
    warm_up "$mode"
    measure "$mode" keepalive
    measure "$mode" close
    stop_server
  done
  for mode in "${slow_modes[@]}"; do
    start_server "${command[$mode]}"
    warm_up "$mode"
    measure "$mode" close
    stop_server
  done
done

# Fairness: connections per worker over $shares new connections, each mode that has workers.
for mode in "${fair[@]}"; do
  start_server "${command[$mode]}"
  rate_seconds=$(( shares / 2000 + 1 ))
  wrk -t1 -c"$conns" -d"${rate_seconds}s" -H "Connection: close" -s bench/fairness.lua "http://127.0.0.1:$port/pid" \
    | awk -v m="$mode" '$1=="share" {print m, $2, $3}' >>"$results/shares"
  stop_server
done

# The primary's memory and CPU over $soak connections, round robin: Herd's, then Node's as the anchor.
soak_primary() { # mode pattern file
  start_server "${command[$1]}"
  local primary
  primary=$(pgrep -f -o -- "$2")
  rss() { awk '/VmRSS/ {print $2}' "/proc/$primary/status"; }
  cpu() { awk '{print $14 + $15}' "/proc/$primary/stat"; }
  echo "baseline $(rss) $(cpu) 0" >>"$results/$3"
  local done_conns=0 start_ns n
  start_ns=$(date +%s%N)
  while (( done_conns < soak )); do
    n=$(wrk -t1 -c"$conns" -d"$(( quick ? 1 : 2 ))s" -H "Connection: close" "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
    done_conns=$(( done_conns + n ))
    echo "after $(rss) $(cpu) $done_conns" >>"$results/$3"
  done
  echo "elapsed $(( ($(date +%s%N) - start_ns) / 1000000 ))" >>"$results/$3"
  stop_server
}
soak_primary herd-rr "HelloCluster.dll --port $port" soak
soak_primary node-rr "cluster.js --port $port" soak-node

# Handoff: how fast the primary alone accepts and hands over connections, and the latency it adds; direct and handoff
# alternate, round by round.
$bench handoff --seconds "$seconds" --rounds "$rounds" >"$results/handoff"

# A reload under saturating load: `herd run -i 2` on the same sample, requests served in each second of a $window s
# window of Connection: close, once without a reload and once with one a third of the way in.
reload_window() { # file reload?
  local herd_dir
  herd_dir=$(mktemp -d)
  XDG_RUNTIME_DIR="$herd_dir" dotnet src/Herd.Cli/bin/Release/net10.0/Herd.Cli.dll run -i 2 --name bench -- $hello --workers 0 \
    >"$results/herd.log" 2>&1 &
  server=$!
  for _ in $(seq 1 400); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
  warm_up reload-$1
  wrk -t1 -c"$conns" -d"${window}s" -H "Connection: close" -s bench/seconds.lua "http://127.0.0.1:$port/" \
    | awk '$1=="second" {print $2, $3}' >"$results/$1" &
  local load=$!
  if [[ $2 == yes ]]; then
    sleep $(( window / 3 ))
    XDG_RUNTIME_DIR="$herd_dir" dotnet src/Herd.Cli/bin/Release/net10.0/Herd.Cli.dll reload --name bench >"$results/reload.log" 2>&1 || true
  fi
  wait "$load"
  stop_server
  rm -rf "$herd_dir"
}
reload_window window-steady no
reload_window window-reload yes

report=docs/benchmarks.md
(( quick )) && report="$results/benchmarks.md"
$bench report "$results" "$report" "$rounds" "$seconds" "$warm_round/$warm_cap" "$conns"
cat "$report"
