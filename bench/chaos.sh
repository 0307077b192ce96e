#!/usr/bin/env bash
# Herd's reliability scenarios in their long forms, with a figure for each. CI runs the same tests at small sizes.
#   bench/chaos.sh           kill -9 for 30 s, a reload every 2 s for 30 s, a 200,000-connection soak, 10,000 idle clients,
#                            20 seeded operation storms, 20 herd upgrades under load...
#   bench/chaos.sh --quick   CI's sizes
# Prints a table of scenario and figure. Traffic stays on 127.0.0.1; every scenario stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" != "--quick" ]]; then
  export HERD_CHAOS_KILL_SECONDS=30 HERD_CHAOS_RELOADS=15 HERD_CHAOS_SOAK_CONNECTIONS=200000
  export HERD_CHAOS_IDLE=10000 HERD_CHAOS_SLOWLORIS=1000 HERD_CHAOS_RESETS=2000 HERD_CHAOS_REQUESTS=2000
  # The operation storm: 20 seeds in a row, 60 operations each; HERD_CHAOS_STORM_SEED=N replays from seed N.
  export HERD_CHAOS_STORM_SEEDS=${HERD_CHAOS_STORM_SEEDS:-20} HERD_CHAOS_STORM_OPERATIONS=${HERD_CHAOS_STORM_OPERATIONS:-60}
  # herd upgrade: 20 in a row under a Connection: close and a keep-alive load.
  export HERD_CHAOS_UPGRADES=${HERD_CHAOS_UPGRADES:-20}
fi
report=$(mktemp)
trap 'rm -f "$report"' EXIT
export HERD_CHAOS_REPORT=$report

dotnet build Herd.slnx -c Release -nologo -v q >/dev/null
status=0
dotnet test tests/Herd.Tests -c Release --no-build --nologo \
  --filter "FullyQualifiedName~StormTests|FullyQualifiedName~ReliabilityTests|FullyQualifiedName~HostileClientTests|FullyQualifiedName~SecurityTests|FullyQualifiedName~when_the_primary_is_killed|FullyQualifiedName~killed_with_its_primary|FullyQualifiedName~Upgrades_in_a_row" \
  >"$report.log" 2>&1 || status=$?
grep -E "^(Passed|Failed)!|^\s+Failed " "$report.log" || cat "$report.log"
rm -f "$report.log"

echo
echo "| scenario | figure |"
echo "|---|---|"
sort "$report" | awk -F'\t' '{printf "| %s | %s |\n", $1, $2}'
exit "$status"
