#!/usr/bin/env bash
# Create a Cloud TPU VM slice and install grover-jax on every worker.
#   scripts/tpu_vm_create.sh NAME ZONE ACCELERATOR [RUNTIME]
#   e.g. scripts/tpu_vm_create.sh grover-v5e16 us-west4-a v5litepod-16
# (tpu_vm_launch.sh compiles the step for the slice before it starts training.)
# Needs: gcloud authenticated for a project with TPU quota; this repository pushed somewhere the
# workers can clone (REPO_URL, default: the current origin) or copied with `gcloud ... scp`.
set -euo pipefail
name=${1:?TPU name}; zone=${2:?zone}; accelerator=${3:?accelerator type, e.g. v5litepod-16}
runtime=${4:-v2-alpha-tpuv5-lite}
repo_url=${REPO_URL:-$(git remote get-url origin 2>/dev/null || true)}
[ -n "$repo_url" ] || { echo "set REPO_URL to a git URL the TPU workers can clone" >&2; exit 2; }

# Optional, before paying for the slice: compile the run's step for it on this machine (needs the
# [tpu] extra here), e.g. COMPILE_ARGS="--config configs/grover_base.py --set train.batch_size=1024".
if [ -n "${COMPILE_ARGS:-}" ]; then
  # shellcheck disable=SC2086  # COMPILE_ARGS is a list of words
  grover compile --topology "$accelerator" $COMPILE_ARGS
fi

gcloud compute tpus tpu-vm create "$name" --zone "$zone" --accelerator-type "$accelerator" --version "$runtime"
gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all --command "
  set -e
  [ -d grover-jax ] || git clone '$repo_url' grover-jax
  cd grover-jax && git pull --ff-only && python3 -m pip install -q -e '.[tpu]'
"
echo "created $name ($accelerator in $zone); launch with scripts/tpu_vm_launch.sh $name $zone ..."
