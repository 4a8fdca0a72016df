#!/usr/bin/env bash
# Print the kernel ABI of the micro guest's kernel (the current Debian 12
# cloud kernel), e.g. "6.1.0-56-cloud-amd64": the linux-image-<abi> package the
# linux-image-cloud-amd64 metapackage depends on. Falls back to the newest
# installed cloud headers if apt knows no candidate.
set -euo pipefail
meta=${LINUX_TWINS_META:-linux-image-cloud-amd64}
abi=$(apt-cache depends "$meta" 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { sub(/^linux-image-/, "", $2); print $2; exit }')
if [[ -z "$abi" ]]; then
    abi=$(find /usr/src -maxdepth 1 -name 'linux-headers-*-cloud-amd64' -printf '%f\n' 2>/dev/null |
        sed 's/^linux-headers-//' | sort -V | tail -1)
fi
if [[ -z "$abi" ]]; then
    echo "kernel-abi: cannot resolve the ABI of $meta (apt-cache depends found nothing)" >&2
    exit 1
fi
echo "$abi"
