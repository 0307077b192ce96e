#!/usr/bin/env bash
# Packs Herd, Herd.AspNetCore and the herd tool (Herd.Cli, with the startup hook inside) into one folder.
#   build/pack.sh [--output DIR] [--version-suffix preview.1]
# The build runs under artifacts/pack-build, apart from the projects' bin and obj: packing never rewrites what
# tests or a running herd use.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/artifacts/packages"
suffix=()
while [ $# -gt 0 ]; do
  case "$1" in
    --output) out="$2"; shift 2 ;;
    --version-suffix) suffix=(--version-suffix "$2"); shift 2 ;;
    *) echo "pack.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
for project in Herd Herd.AspNetCore Herd.Cli; do
  dotnet pack "$root/src/$project/$project.csproj" -c Release -o "$out" --artifacts-path "$root/artifacts/pack-build" \
    -p:ContinuousIntegrationBuild=true "${suffix[@]}" -nologo -clp:NoSummary
done
ls "$out"
