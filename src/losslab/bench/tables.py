"""The benchmark results as Markdown tables."""

from __future__ import annotations

from typing import Any


def _fmt_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value >= 0.01 else f"{value:.1e}"   # keep a tiny ratio readable


def _fmt_mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def markdown_table(result: dict[str, Any]) -> str:
    """The results as Markdown: one row per (loss, size), then the end-to-end step."""
    lines = [
        "| loss | size | losslab ms | ×torch | ×reference | ×peer | ×bound | peak MiB | peak ×torch | saved MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if not result.get("config", {}).get("value_checks", True):
        lines.insert(0, "losslab timed with value checks off (`losslab.set_validation(False)`).\n")
    for case in result["cases"]:
        ratios = case["ratios"]
        if "losslab" not in case["time_ms"]:
            lines.append(f"| {case['loss']} | {case['size']} | {case['skipped'].get('losslab', '-')} "
                         "| | | | | | | |")
            continue
        lines.append(
            f"| {case['loss']} | {case['size']} | {case['time_ms']['losslab']:.2f} | "
            f"{_fmt_ratio(ratios['time_vs_torch'])} | {_fmt_ratio(ratios['time_vs_reference'])} | "
            f"{_fmt_ratio(ratios['time_vs_peer'])} | {_fmt_ratio(ratios['time_vs_bound'])} | "
            f"{_fmt_mb(case['peak_bytes'].get('losslab'))} | "
            f"{_fmt_ratio(ratios['peak_memory_vs_torch'])} | {_fmt_mb(case['saved_bytes'].get('losslab'))} |"
        )
    baselines = sorted({(c["loss"], c["baselines"].get("torch"), c["baselines"].get("peer"))
                        for c in result["cases"]}, key=lambda row: row[0])
    notes = [f"- {loss}: torch = {t or '-'}; peer = {p or '-'}" for loss, t, p in baselines if t or p]
    skipped = sorted({(c["loss"], c["skipped"]["peer"]) for c in result["cases"]
                      if "peer" in c["skipped"] and "losslab" not in c["skipped"]})
    compiled_rows = [c for c in result["cases"] if c["ratios"].get("compiled_vs_torch") is not None]
    if compiled_rows:
        lines += ["", "Compiled with Inductor (`torch.compile(module)`), ratio to torch's built-in:", "",
                  "| loss | size | compiled ms | ×torch |", "|---|---|---:|---:|"]
        lines += [f"| {c['loss']} | {c['size']} | {c['time_ms']['compiled']:.2f} | "
                  f"{c['ratios']['compiled_vs_torch']:.2f} |" for c in compiled_rows]
    text = "\n".join(lines)
    if notes:
        text += "\n\nBaselines:\n" + "\n".join(notes)
    by_reason: dict[str, list[str]] = {}
    for loss, reason in skipped:
        by_reason.setdefault(reason, []).append(loss)
    if by_reason:
        text += "\n\nNo peer baseline:\n" + "\n".join(
            f"- {reason}: {', '.join(losses)}" for reason, losses in by_reason.items())
    load = result.get("load_average")
    if load:
        threads = result.get("environment", {}).get("torch_threads")
        text += (f"\n\nLoad average (1, 5, 15 min) before {load.get('before')}, after {load.get('after')}"
                 f"{f'; {threads} torch threads' if threads else ''}.")
    e2e = result.get("end_to_end")
    if e2e:
        text += (f"\n\nEnd to end ({e2e['model']}, batch {e2e['batch']}): one training step, "
                 f"cross-entropy {e2e['step_ms']['cross_entropy']:.1f} ms; ratio to it: "
                 + ", ".join(f"{k} {v:.3f}" for k, v in e2e["ratio_vs_cross_entropy"].items()))
    return text + "\n"
