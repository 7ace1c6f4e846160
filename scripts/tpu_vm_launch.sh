#!/usr/bin/env bash
# Run `grover pretrain` on every worker of a TPU VM slice (one process per host; JAX finds the
# other hosts itself: --distributed auto). The workdir must be shared by all hosts (a gcsfuse-mounted
# bucket or NFS path): orbax writes one checkpoint from all of them.
#   scripts/tpu_vm_launch.sh NAME ZONE WORKDIR [grover pretrain args...]
#   e.g. scripts/tpu_vm_launch.sh grover-v5e16 us-west4-a /mnt/bucket/runs/base \
#          --config configs/grover_base.py --store /mnt/bucket/stores/hg19 --set train.batch_size=1024
# First the same step is compiled for the slice's topology (`grover compile`: on this machine if it
# has libtpu, else on worker 0), so a config that cannot shard or does not fit in HBM stops here, in
# a minute or two, before any worker starts. SKIP_COMPILE=1 skips that check.
set -euo pipefail
name=${1:?TPU name}; zone=${2:?zone}; workdir=${3:?shared workdir}; shift 3
args=$(printf ' %q' "$@")

if [ "${SKIP_COMPILE:-0}" != 1 ]; then
  accelerator=$(gcloud compute tpus tpu-vm describe "$name" --zone "$zone" --format 'value(acceleratorType)')
  # Only the arguments that shape the step: the config, its overrides, and the store's vocabulary.
  compile_args=(--topology "$accelerator"); tokenizer=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --config|--set) compile_args+=("$1" "$2"); shift 2 ;;
      --config=*|--set=*) compile_args+=("$1"); shift ;;
      --store) tokenizer="$2/tokenizer.json"; shift 2 ;;
      --store=*) tokenizer="${1#--store=}/tokenizer.json"; shift ;;
      *) shift ;;
    esac
  done
  [ -z "$tokenizer" ] || compile_args+=(--tokenizer "$tokenizer")
  echo "checking the step for $accelerator: grover compile ${compile_args[*]}"
  if python3 -c "import libtpu, grover_jax" 2>/dev/null && { [ -z "$tokenizer" ] || [ -f "$tokenizer" ]; }; then
    grover compile "${compile_args[@]}"
  else
    gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=0 \
      --command "cd grover-jax && grover compile $(printf ' %q' "${compile_args[@]}")"
  fi
fi

gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all --command "
  cd grover-jax && grover pretrain --distributed auto --workdir '$workdir' $args 2>&1 | tee -a ~/grover_pretrain.log
"
