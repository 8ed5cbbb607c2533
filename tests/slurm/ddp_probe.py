"""Torchrun worker for the Slurm test workflow: proves one gloo process group per job.

Each rank sums the bytes of its share of the input files; an all_reduce gives the total,
so the result is the same for any world size, and rank 0 writes the world size too: a job
started once per GPU (the wrong task geometry) would show up as several groups of one.

Usage: torchrun --standalone --nproc_per_node N ddp_probe.py OUT INPUT...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def main(out: str, inputs: list[str]) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = sum(Path(p).stat().st_size for p in inputs[rank::world])
    total = torch.tensor([mine], dtype=torch.int64)
    dist.all_reduce(total)
    if rank == 0:
        tmp = Path(out + ".tmp")
        tmp.write_text(f"world_size={world} bytes={int(total.item())}\n")
        os.replace(tmp, out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
