"""Fully connected network benchmark: training throughput of the reference MLP (issue 4).

What it measures, for the reference network (2000 inputs -> 1000 -> 1000 -> 1000 -> 1) with the
reference batch of 10,000 examples:

1. One training step (forward, MSE loss, backward, Adam update) on the chosen device: the median
   time of ``repeats`` steps after a warm-up step, as examples/s and achieved GFLOP/s.
2. Inference alone (forward in eval mode, no gradients), as examples/s.
3. :func:`chromexpr.models.fc_net.train_mlp` itself for one epoch of ``epoch_batches`` in-memory
   batches (so numpy-to-tensor conversion and the loop's bookkeeping count; the loader's own cost
   does not), as the examples/s it reports in its history.

From the step time it states what one epoch over the reference training set (17,794 genes x 160
samples = 2,847,040 examples) would take. On CUDA the step runs with AMP (bfloat16) as in training.

Run::

    python benchmarks/bench_fc.py [--quick] [--device auto|cpu|cuda]

Writes ``benchmarks/results/fc.json`` (``fc-quick.json``, or ``fc-cuda.json`` on a GPU) and prints a
markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
N_INPUTS = 2000
HIDDEN = (1000, 1000, 1000)
BATCH = 10_000
EPOCH_EXAMPLES = 17_794 * 160


def flops_per_step(batch: int) -> float:
    """Floating-point operations of forward + backward (twice the forward) in the Linear layers."""
    widths = [N_INPUTS, *HIDDEN, 1]
    macs = sum(a * b for a, b in itertools.pairwise(widths))
    return 3 * 2 * macs * batch


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: Sequence[str] | None = None) -> int:
    from chromexpr.models.fc_net import TrainConfig, build_mlp, resolve_device, train_mlp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    repeats = 2 if args.quick else 5
    epoch_batches = 2 if args.quick else 4
    amp = device.type == "cuda"

    rng = np.random.default_rng(0)
    x_np = rng.random((BATCH, N_INPUTS), dtype=np.float32)
    y_np = rng.random(BATCH, dtype=np.float32)
    x = torch.from_numpy(x_np).to(device)
    y = torch.from_numpy(y_np).to(device)
    net = build_mlp(N_INPUTS, HIDDEN, seed=0).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def autocast() -> contextlib.AbstractContextManager[Any]:
        if amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step() -> float:
        synchronise(device)
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            pred = net(x)
        loss = (pred.float() - y).pow(2).mean()
        loss.backward()
        optimizer.step()
        synchronise(device)
        return time.perf_counter() - t0

    def forward() -> float:
        synchronise(device)
        t0 = time.perf_counter()
        with torch.no_grad(), autocast():
            net(x)
        synchronise(device)
        return time.perf_counter() - t0

    print(f"device {device}, {torch.get_num_threads()} torch threads", file=sys.stderr)
    net.train()
    step()  # warm-up
    step_times = [step() for _ in range(repeats)]
    net.eval()
    forward()
    forward_times = [forward() for _ in range(repeats)]

    def batches(epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray, None]]:
        for _ in range(epoch_batches):
            yield x_np, y_np, None

    config = TrainConfig(epochs=1, device=str(device), amp=amp, patience=0)
    history = train_mlp(build_mlp(N_INPUTS, HIDDEN, seed=1), batches, lambda: iter(()), config)

    step_s = statistics.median(step_times)
    result: dict[str, Any] = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "amp": amp,
        "network": [N_INPUTS, *HIDDEN, 1],
        "batch": BATCH,
        "step_s_median": step_s,
        "step_s": step_times,
        "train_examples_per_s": BATCH / step_s,
        "train_gflop_per_s": flops_per_step(BATCH) / step_s / 1e9,
        "forward_s_median": statistics.median(forward_times),
        "inference_examples_per_s": BATCH / statistics.median(forward_times),
        "train_mlp_examples_per_s": history[0]["examples_per_s"],
        "train_mlp_batches": epoch_batches,
        "epoch_examples": EPOCH_EXAMPLES,
        "epoch_estimate_min": EPOCH_EXAMPLES / (BATCH / step_s) / 60,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "fc-cuda" if device.type == "cuda" else "fc"
    out = RESULTS / (f"{name}-quick.json" if args.quick else f"{name}.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    r = result
    print(
        "\n".join(
            [
                f"### Reference MLP ({' -> '.join(map(str, r['network']))}), batch {BATCH:,}, "
                f"{r['device']} ({r['torch_threads']} threads{', AMP bf16' if amp else ''})",
                "",
                "| measurement | value |",
                "|---|---|",
                f"| training step (forward + backward + Adam), median of {repeats} | "
                f"{r['step_s_median']:.2f} s: **{r['train_examples_per_s']:,.0f} examples/s** "
                f"({r['train_gflop_per_s']:.0f} GFLOP/s) |",
                f"| `train_mlp`, one epoch of {epoch_batches} in-memory batches | "
                f"{r['train_mlp_examples_per_s']:,.0f} examples/s |",
                f"| inference (forward only) | {r['inference_examples_per_s']:,.0f} examples/s |",
                f"| one epoch of 17,794 x 160 = {EPOCH_EXAMPLES:,} examples (from the step time) | "
                f"{r['epoch_estimate_min']:.1f} min |",
            ]
        )
    )
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
