#!/usr/bin/env bash
# Publishes herd as one native executable (Native AOT, linux-x64), with the startup hook its JIT'd workers load
# beside it: a primary that starts in milliseconds and holds a few MB (the dotnet tool from build/pack.sh stays JIT'd,
# since a tool package cannot carry a native program).
#   build/publish-aot.sh [--output DIR]      (default artifacts/herd-aot; then DIR/herd run -i 2 -- dotnet App.dll)
# Native AOT links with clang, or gcc where there is no clang (Debian's base image), and zlib.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/artifacts/herd-aot"
while [ $# -gt 0 ]; do
  case "$1" in
    --output) out="$2"; shift 2 ;;
    *) echo "publish-aot.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if ! command -v gcc >/dev/null || [ ! -e /usr/include/zlib.h ]; then
  apt-get update -qq >/dev/null && apt-get install -y -qq gcc zlib1g-dev >/dev/null
fi
# Built under artifacts/aot-build, apart from the projects' bin and obj: publishing never rewrites what tests or a
# running herd use.
dotnet publish "$root/src/Herd.Cli/Herd.Cli.csproj" -c Release -p:PublishProfile=Aot -o "$out" \
  --artifacts-path "$root/artifacts/aot-build" -nologo -clp:NoSummary
mv -f "$out/Herd.Cli" "$out/herd"
mv -f "$out/Herd.Cli.dbg" "$out/herd.dbg"
echo "$out/herd"
