"""Wall time of the quick classification grid: ``--backend ray`` against ``--workers 2``.

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python benchmarks/ray_vs_workers.py'

Runs ``losslab compare --task digits-mlp --preset quick`` (the paper's five losses, ``--seeds``
seeds, one torch thread per run) twice per repetition into fresh databases, alternating the two
backends so a busy moment of a shared machine hits both alike:

- ``local``: ``--workers 2 --threads 1`` (today's worker processes);
- ``ray``: ``--backend ray --cpus-per-run 1 --threads 1``, a Ray instance started on this
  machine for the command and stopped afterwards (its start-up is part of the wall time).

Prints the ratio ray / local of the median wall times (target: at most 1.15) and of the grid
alone (the runner's own "done in" time, without Ray's start and stop), and writes
``results/ray-vs-workers-YYYY-MM-DD.json`` and ``.md``. Ray's traffic stays on the loopback
interface: run it in a private network namespace as above (it refuses to run otherwise).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _interfaces() -> list[str]:
    """The network interfaces of this process's network namespace."""
    import socket

    return [name for _, name in socket.if_nameindex()]


def _run(arguments: list[str]) -> tuple[float, float]:
    """(wall seconds of the command, the grid's own "done in" seconds)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "losslab.cli", "compare", *arguments],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"losslab compare failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    grids = [float(x) for x in re.findall(r"\[compare\] done in ([0-9.]+) s", done.stdout + done.stderr)]
    return wall, sum(grids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per loss (default 3)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each backend (default 2)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--allow-network", action="store_true",
                        help="run even with interfaces other than lo (Ray then listens on them)")
    args = parser.parse_args(argv)
    others = [name for name in _interfaces() if name != "lo"]
    if others and not args.allow_network:
        raise SystemExit(f"network interfaces {others} are up: run this in a private network namespace "
                         "(unshare -n sh -c 'ip link set lo up && exec python benchmarks/ray_vs_workers.py')")
    grid = ["--task", "digits-mlp", "--preset", "quick", "--losses", "cross_entropy,m,full_m,l,full_l",
            "--seeds", str(args.seeds), "--threads", "1", "--no-progress"]
    backends = {"local": ["--workers", "2"], "ray": ["--backend", "ray", "--cpus-per-run", "1"]}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in backends}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for name, options in backends.items():
                db = Path(folder) / f"{name}-{repeat}.sqlite"
                times[name].append(_run([*grid, *options, "--db", str(db)]))
                print(f"{name} #{repeat + 1}: {times[name][-1][0]:.1f} s wall, "
                      f"{times[name][-1][1]:.1f} s grid", flush=True)
    wall = {name: statistics.median(t[0] for t in values) for name, values in times.items()}
    inner = {name: statistics.median(t[1] for t in values) for name, values in times.items()}
    ratio, inner_ratio = wall["ray"] / wall["local"], inner["ray"] / inner["local"]
    from losslab.experiments.environment import environment_info

    result = {
        "grid": " ".join(grid), "backends": {k: " ".join(v) for k, v in backends.items()},
        "repeats": args.repeats, "wall_s": times, "median_wall_s": wall, "median_grid_s": inner,
        "ratio_wall": ratio, "ratio_grid": inner_ratio, "target": 1.15,
        "environment": environment_info(),
    }
    lines = [
        f"# Ray backend against 2 worker processes ({dt.date.today().isoformat()})", "",
        f"Grid: `losslab compare {' '.join(grid)}` (5 losses × {args.seeds} seeds, 3 epochs, "
        f"digits 1500/500), median of {args.repeats} alternated runs each, in a private network "
        "namespace.", "",
        "| backend | median wall (s) | median grid (s) |", "|:---|---:|---:|",
        *(f"| {name} (`{' '.join(backends[name])}`) | {wall[name]:.1f} | {inner[name]:.1f} |" for name in backends),
        "", f"**ray / local: {ratio:.2f}× wall** (target ≤ 1.15), {inner_ratio:.2f}× for the grid "
        "alone (without Ray's start and stop).", "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"ray-vs-workers-{dt.date.today().isoformat()}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    stem.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
