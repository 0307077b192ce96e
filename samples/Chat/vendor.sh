#!/usr/bin/env bash
# Refreshes wwwroot/lib/signalr/signalr.min.js from npm's @microsoft/signalr (MIT): SignalR's browser client is not in
# the shared framework. The committed copy is 10.0.11.
set -euo pipefail
cd "$(dirname "$0")"
version="${1:-10}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@microsoft/signalr@$version" >/dev/null && tar xzf microsoft-signalr-*.tgz)
cp "$work/package/dist/browser/signalr.min.js" wwwroot/lib/signalr/signalr.min.js
grep -m1 '"version"' "$work/package/package.json"
