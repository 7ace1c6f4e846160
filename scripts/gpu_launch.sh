#!/usr/bin/env bash
# Pretrain on GPUs: one process per node, all of the node's GPUs in the mesh.
#   One node:   scripts/gpu_launch.sh WORKDIR [grover pretrain args...]
#   Many nodes: run on every node with NUM_NODES, NODE_RANK and COORDINATOR (host:port of node 0) set,
#               or under SLURM (srun --ntasks-per-node=1 scripts/gpu_launch.sh ...), where JAX reads the
#               cluster from SLURM's environment. WORKDIR must be on a filesystem all nodes share.
#   e.g. scripts/gpu_launch.sh runs/base --config configs/grover_base.py --store stores/hg19 \
#          --set model.compute_dtype=bfloat16 --set train.batch_size=512
set -euo pipefail
workdir=${1:?workdir}; shift
# Let XLA keep most of GPU memory for itself, and overlap collectives with compute.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}
if [ -n "${SLURM_JOB_ID:-}" ] && [ "${SLURM_NNODES:-1}" -gt 1 ]; then
  exec grover pretrain --distributed auto --workdir "$workdir" "$@"
elif [ "${NUM_NODES:-1}" -gt 1 ]; then
  export JAX_COORDINATOR_ADDRESS=${COORDINATOR:?host:port of node 0}
  export JAX_NUM_PROCESSES=$NUM_NODES JAX_PROCESS_ID=${NODE_RANK:?rank of this node}
  exec grover pretrain --distributed env --workdir "$workdir" "$@"
else
  exec grover pretrain --workdir "$workdir" "$@"
fi
