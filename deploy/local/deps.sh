#!/usr/bin/env bash
# The system commands finpulse's tests need beyond python3, and the Debian packages that hold
# them: services.sh runs Kafka and Elasticsearch on Java (jars fetched with Maven) and Debian's
# Prometheus and Alertmanager; the dashboard's browser test drives Chromium.
# Usage: deps.sh missing COMMAND...  the packages of the missing commands, one a line
#        deps.sh ensure [GROUP...]   as root install what is missing; else name it in one line;
#                                    exits 0 either way (the tests that need a package fail)
#        deps.sh install [GROUP...]  install what is missing (as root, or through sudo)
# GROUP: services, browser (default: both). See deploy/local/README.md.
set -euo pipefail

declare -A PACKAGE=(
  [java]=default-jre-headless [mvn]=maven [curl]=curl [unzip]=unzip
  [prometheus]=prometheus [prometheus-alertmanager]=prometheus-alertmanager
  [chromium]=chromium [chromedriver]=chromium-driver
)
declare -A GROUP=(
  [services]="java mvn curl unzip prometheus prometheus-alertmanager"
  [browser]="chromium chromedriver"
)

say() { echo "[deps] $*" >&2; }

missing() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null || echo "${PACKAGE[$cmd]:-$cmd}"
  done
}

# The commands of the groups named (all if none), on one line.
commands_of() {
  local group groups=("$@") cmds=()
  ((${#groups[@]})) || groups=(services browser)
  for group in "${groups[@]}"; do
    [[ -n ${GROUP[$group]:-} ]] || { say "unknown group $group (services, browser)"; return 2; }
    cmds+=("${GROUP[$group]}")
  done
  echo "${cmds[*]}"
}

# The missing packages of the groups named, into the array pkgs.
missing_in() {
  local cmds
  cmds=$(commands_of "$@") || return
  # shellcheck disable=SC2086 # a list of words
  mapfile -t pkgs < <(missing $cmds)
}

# apt-get, through sudo when $1 is "sudo". Chromium gets its Recommends (the fonts the dashboard
# is drawn with); the others do without theirs. No package starts a system service in containers.
apt_install() {
  local pkg plain=() browser=() t0=$SECONDS
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=120)
  if [[ $1 == sudo ]]; then apt=(sudo "${apt[@]}"); fi
  for pkg in "${@:2}"; do
    if [[ $pkg == chromium* ]]; then browser+=("$pkg"); else plain+=("$pkg"); fi
  done
  say "installing ${*:2} (Debian packages, a minute or two the first time)"
  "${apt[@]}" update
  if ((${#plain[@]})); then "${apt[@]}" install --no-install-recommends "${plain[@]}"; fi
  if ((${#browser[@]})); then "${apt[@]}" install "${browser[@]}"; fi
  say "timing apt $((SECONDS - t0))s"
}

cmd_ensure() {
  local pkgs
  missing_in "$@" || return
  ((${#pkgs[@]})) || return 0
  if ((EUID == 0)) && command -v apt-get >/dev/null; then
    apt_install root "${pkgs[@]}" && return
    say "FAILED to install ${pkgs[*]} (apt-get output above); the tests that need them will fail"
  else
    say "missing Debian packages: ${pkgs[*]}; the tests that need them will fail. As root run: make deps"
  fi
}

cmd_install() {
  local pkgs
  missing_in "$@" || return
  if ((${#pkgs[@]} == 0)); then
    say "nothing to install: ${*:-services browser} all there"
  elif ! command -v apt-get >/dev/null; then
    say "no apt-get here: install ${pkgs[*]} (Debian names) with this system's package manager"
    return 1
  elif ((EUID == 0)); then
    apt_install root "${pkgs[@]}"
  elif command -v sudo >/dev/null; then
    apt_install sudo "${pkgs[@]}"
  else
    say "not root and no sudo: as root run apt-get install ${pkgs[*]}"
    return 1
  fi
}

case ${1:-} in
  missing) missing "${@:2}" ;;
  ensure) cmd_ensure "${@:2}" ;;
  install) cmd_install "${@:2}" ;;
  *)
    echo "usage: $0 missing COMMAND... | ensure [GROUP...] | install [GROUP...]" >&2
    exit 2
    ;;
esac
