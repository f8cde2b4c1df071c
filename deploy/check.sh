#!/usr/bin/env bash
# Validates every file under deploy/ that a team deploys, with real validators, offline:
#   dockerfile   hadolint on deploy/docker/Dockerfile
#   compose      compose-spec JSON schema (check-jsonschema's vendored copy); promtool on the
#                compose Prometheus config with finpulse's rules; amtool on the Alertmanager
#                config compose mounts
#   k8s          kustomize build of every overlay, strict Kubernetes schemas (kubernetes-validate,
#                oldest and newest supported version), crdcheck for the ServiceMonitor
#   config-keys  every FINPULSE_* env name and TOML key set anywhere exists in Settings, and
#                each role's configuration loads
# Usage: deploy/check.sh [STEP...]   (default: all). Tools come from deploy/tools/install.sh.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${FINPULSE_CACHE:-$HOME/.cache/finpulse}
BIN=$CACHE/bin
TOOLS=$CACHE/deploy-tools-venv/bin
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
K8S_VERSIONS=(1.28.0 1.37.0)  # oldest supported (CronJob timeZone is GA from 1.27) and newest
cd "$ROOT"

"$ROOT/deploy/tools/install.sh"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

render_overlays() {
  [[ -d $WORK/k8s ]] && return
  mkdir -p "$WORK/k8s"
  local overlay
  for overlay in deploy/k8s/overlays/*/; do
    "$BIN/kustomize" build "$overlay" >"$WORK/k8s/$(basename "$overlay").yaml"
  done
}

step_dockerfile() {
  "$TOOLS/hadolint" deploy/docker/Dockerfile && echo "hadolint: deploy/docker/Dockerfile ok"
}

step_compose() {
  "$TOOLS/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose/compose.yaml
  # Lay the config out as it is mounted in the container, so rule_files resolve the same way.
  mkdir -p "$WORK/prometheus"
  cp deploy/compose/prometheus.yml "$WORK/prometheus/"
  cp -r deploy/prometheus/rules "$WORK/prometheus/rules"
  promtool check config "$WORK/prometheus/prometheus.yml"
  amtool check-config deploy/alertmanager/alertmanager.example.yml
}

step_k8s() {
  render_overlays
  local f version out unknown
  for f in "$WORK"/k8s/*.yaml deploy/k8s/base/secret.example.yaml; do
    for version in "${K8S_VERSIONS[@]}"; do
      out=$("$TOOLS/kubernetes-validate" --strict --quiet -k "$version" "$f" 2>&1) \
        || { echo "$out" >&2; return 1; }
      # An unknown kind is only a warning there; only the CRD that crdcheck covers may be unknown.
      unknown=$(grep "Couldn't find schema" <<<"$out" \
        | grep -v "kind ServiceMonitor with api version monitoring.coreos.com/v1 " || true)
      [[ -z $unknown ]] || { echo "$unknown" >&2; return 1; }
    done
    echo "kubernetes-validate --strict (${K8S_VERSIONS[*]}): ${f#"$WORK"/} ok"
    "$BIN/crdcheck" <"$f"
  done
}

step_config-keys() {
  render_overlays
  local args=() f
  for f in "$WORK"/k8s/*.yaml; do args+=(--k8s "$f"); done
  "$PYTHON" deploy/tools/check_config_keys.py --dockerfile deploy/docker/Dockerfile \
    --compose deploy/compose/compose.yaml --compose-env deploy/compose/.env.example \
    "${args[@]}" --k8s-extra deploy/k8s/base/secret.example.yaml
}

STEPS=("$@")
((${#STEPS[@]})) || STEPS=(dockerfile compose k8s config-keys)
for step in "${STEPS[@]}"; do
  declare -F "step_$step" >/dev/null || { echo "unknown step: $step" >&2; exit 2; }
done
for step in "${STEPS[@]}"; do
  echo "== $step"
  trap 'echo "deploy checks FAILED at step: $step" >&2' ERR
  "step_$step"
done
echo "deploy checks ok: ${STEPS[*]}"
