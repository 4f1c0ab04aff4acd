#!/usr/bin/env bash
# Install the Debian packages listed in scripts/system-packages.txt whose command is missing.
# Idempotent and quiet when everything is there; needs root (or sudo) only when something is missing.
set -euo pipefail
cd "$(dirname "$0")"
missing=()
while read -r package command _; do
    [[ -z "${package}" || "${package}" == \#* ]] && continue
    command -v "${command:-${package}}" >/dev/null 2>&1 || missing+=("${package}")
done < system-packages.txt
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "Installing Debian packages the tests need: ${missing[*]}"
sudo=()
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "Not root and no sudo: install ${missing[*]} yourself (apt-get install ${missing[*]})"; exit 1; }
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
