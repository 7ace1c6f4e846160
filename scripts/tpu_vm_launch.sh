#!/usr/bin/env bash
# Run `grover pretrain` on every worker of a TPU VM slice (one process per host; JAX finds the
# other hosts itself: --distributed auto). The workdir must be shared by all hosts (a gcsfuse-mounted
# bucket or NFS path): orbax writes one checkpoint from all of them.
#   scripts/tpu_vm_launch.sh NAME ZONE WORKDIR [grover pretrain args...]
#   e.g. scripts/tpu_vm_launch.sh grover-v5e16 us-west4-a /mnt/bucket/runs/base \
#          --config configs/grover_base.py --store /mnt/bucket/stores/hg19 --set train.batch_size=1024
set -euo pipefail
name=${1:?TPU name}; zone=${2:?zone}; workdir=${3:?shared workdir}; shift 3
args=$(printf ' %q' "$@")
gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all --command "
  cd grover-jax && grover pretrain --distributed auto --workdir '$workdir' $args 2>&1 | tee -a ~/grover_pretrain.log
"
