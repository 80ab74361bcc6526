#!/usr/bin/env bash
# Build the Jaeger v2 binary (cmd/jaeger, pinned as a Go tool in go.mod) into
# infra/jaeger/bin/jaeger. Idempotent: when go.mod, go.sum, this script and the
# Go version are unchanged since the last build, it does nothing.
# A first build takes several minutes on 2 cores; later ones reuse Go's caches.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="$HERE/bin/jaeger"
STAMP="$HERE/bin/.build-stamp"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
PKG=github.com/jaegertracing/jaeger

[[ -x "$GO" ]] || { echo "error: jaeger: Go is missing (install Go 1.24+ or set GO=/path/to/go)" >&2; exit 1; }
# never let the go command fetch another toolchain: the installed one must do
export GOTOOLCHAIN=local

cd "$HERE"
stamp="$( { "$GO" version; cat go.mod go.sum "$HERE/build.sh"; } | sha256sum | cut -d' ' -f1)"
if [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$stamp" ]]; then
  echo "jaeger: up to date ($BIN)"
  exit 0
fi

version="$("$GO" list -m -f '{{.Version}}' "$PKG")"
echo "jaeger: building $PKG/cmd/jaeger@$version with $("$GO" version | cut -d' ' -f3) (first build takes minutes)"
mkdir -p "$HERE/bin"
start=$SECONDS
# static, stripped binary; the version shows in `jaeger version` and the UI
CGO_ENABLED=0 "$GO" build -trimpath \
  -ldflags "-s -w -X $PKG/internal/version.latestVersion=$version" \
  -o "$BIN.tmp" "$PKG/cmd/jaeger"
mv -f "$BIN.tmp" "$BIN"
echo "$stamp" >"$STAMP"
echo "jaeger: built $BIN in $((SECONDS - start))s"
