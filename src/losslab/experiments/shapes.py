"""The paper's Figures 1–3 (loss shapes) and a derivative / strictness figure.

``make_figures(out_dir)`` writes the figures as PNG and SVG; ``build_section(context)`` adds
them to the reproduction report with the strictness findings computed by
:mod:`losslab.analysis`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from losslab.analysis import curve, probability_grid, strictness
from losslab.plotting import color_for, pyplot, save_figure
from losslab.registry import PAPER_LOSSES, get_info
from losslab.report import Figure, Section

# The figures compare the multiclass forms of the paper's losses with cross-entropy.
MULTICLASS_PAPER_LOSSES = tuple(name for name in PAPER_LOSSES if get_info(name).family == "classification")
REGRESSION_LOSSES = ("mae", "mse", "huber", "log_cosh", "smae")
_LABELS = {
    "cross_entropy": "BCE",
    "m": "M",
    "full_m": "full M",
    "l": "L",
    "full_l": "full L",
    "mae": "MAE",
    "mse": "MSE",
    "huber": "Huber (δ=1)",
    "log_cosh": "log-cosh",
    "smae": "SMAE",
}
_STYLES = {"full_m": "--", "full_l": "--"}


def _label(name: str) -> str:
    return _LABELS.get(name, name)


def figure_bce(out_dir: Path) -> Figure:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for y, style in ((1.0, "-"), (0.0, "--")):
        c = curve("cross_entropy", y=y)
        ax.plot(c.x, c.value, style, color="#222222", label=f"y = {y:g}: −log {'p' if y else '(1 − p)'}")
    ax.set(xlabel="network output p", ylabel="loss", ylim=(0, 5), xlim=(0, 1),
           title="Figure 1: binary cross-entropy")
    ax.legend()
    return save_figure(fig, out_dir, "fig1_bce", "Figure 1: BCE against the output p for y = 0 and y = 1.")


def figure_classification_losses(out_dir: Path) -> Figure:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, y in zip(axes, (1.0, 0.0)):
        for name in ("cross_entropy", *MULTICLASS_PAPER_LOSSES):
            c = curve(name, y=y)
            if y == 0.0 and name in ("m", "l"):
                continue  # identically zero: only the true class is penalised
            if y == 1.0 and name in ("full_m", "full_l"):
                continue  # equal to M / L when y = 1
            ax.plot(c.x, c.value, _STYLES.get(name, "-"), color=color_for(name), label=_label(name), lw=1.8)
        ax.set(xlabel="network output p", xlim=(0, 1), ylim=(0, 6),
               title=f"target y = {y:g}" + (" (full M = M, full L = L)" if y == 1 else " (M = L = 0)"))
        ax.legend()
    axes[0].set_ylabel("loss")
    fig.suptitle("Figure 2: cross-entropy and the paper's losses", y=1.03)
    return save_figure(
        fig, out_dir, "fig2_classification_losses",
        "Figure 2: BCE, M, full M, L and full L against p. For y = 1 the full losses equal M and L; "
        "for y = 0 only the full losses penalise p.",
    )


def figure_derivatives(out_dir: Path) -> Figure:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    grid = probability_grid(2001, margin=1e-3)
    for ax, y in zip(axes, (1.0, 0.0)):
        for name in ("cross_entropy", *MULTICLASS_PAPER_LOSSES):
            if (y == 0.0 and name in ("m", "l")) or (y == 1.0 and name in ("full_m", "full_l")):
                continue
            c = curve(name, grid, y=y)
            ax.plot(c.x, c.derivative.abs(), _STYLES.get(name, "-"), color=color_for(name),
                    label=_label(name), lw=1.8)
        ax.set_yscale("log")
        ax.set(xlabel="network output p", xlim=(0, 1), ylim=(1e-2, 1e4), title=f"target y = {y:g}")
        ax.legend()
    lenient = strictness("l", y=1.0)
    for low, high in lenient.lenient_intervals:
        axes[0].axvspan(low, high, color=color_for("l"), alpha=0.08)
    for cross in lenient.crossings:
        axes[0].axvline(cross, color=color_for("l"), lw=0.8, ls=":")
        axes[0].annotate(f"p = {cross:.3f}", (cross, 2e3), xytext=(6, 0), textcoords="offset points",
                         color=color_for("l"))
    axes[0].set_ylabel("|d loss / dp|")
    fig.suptitle("Strictness: |d loss / dp| (larger = stricter); shaded: L more lenient than BCE", y=1.03)
    return save_figure(
        fig, out_dir, "fig2b_derivatives",
        "Derivative magnitudes. M is stricter than BCE on all of (0, 1); L is more lenient than BCE "
        "for p above the marked crossing.",
    )


def figure_regression_losses(out_dir: Path) -> Figure:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    errors = torch.linspace(-6.0, 6.0, 1201, dtype=torch.float64)
    mae = errors.abs()
    for name in REGRESSION_LOSSES:
        c = curve(name, errors)
        style = ":" if name == "mae" else "-"
        axes[0].plot(c.x, c.value, style, color=color_for(name), label=_label(name), lw=1.8)
        if name != "mae":
            axes[1].plot(c.x, c.value - mae, color=color_for(name), label=_label(name), lw=1.8)
    axes[0].set(xlabel="error e", ylabel="loss", ylim=(0, 6), title="regression losses")
    axes[1].axhline(0.0, color="#222222", lw=0.8, ls=":")
    axes[1].set(xlabel="error e", ylabel="loss − |e|", ylim=(-1.0, 1.0),
                title="gap to MAE (SMAE → 0; log-cosh → −log 2; Huber → −δ/2)")
    for ax in axes:
        ax.legend()
    fig.suptitle("Figure 3: MAE, MSE, Huber, log-cosh and SMAE", y=1.03)
    return save_figure(
        fig, out_dir, "fig3_regression_losses",
        "Figure 3: regression losses against the error, and their gap to MAE.",
    )


def make_figures(out_dir: str | Path) -> list[Figure]:
    """Write Figures 1, 2, the derivative figure and Figure 3 (PNG + SVG) into ``out_dir``."""
    out = Path(out_dir)
    return [
        figure_bce(out),
        figure_classification_losses(out),
        figure_derivatives(out),
        figure_regression_losses(out),
    ]


def _smae_facts() -> dict[str, float]:
    errors = torch.linspace(0.0, 8.0, 80001, dtype=torch.float64, requires_grad=True)
    value = get_info("smae").pointwise(errors)
    (first,) = torch.autograd.grad(value.sum(), errors, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), errors)
    concave_from = float(errors[torch.nonzero(second < 0)[0]].detach())
    big = torch.tensor([20.0], dtype=torch.float64)
    return {
        "smae_concave_beyond": concave_from,
        "gap_to_mae_at_20_smae": float(curve("smae", big).value - 20.0),
        "gap_to_mae_at_20_log_cosh": float(curve("log_cosh", big).value - 20.0),
        "gap_to_mae_at_20_huber": float(curve("huber", big).value - 20.0),
    }


def findings() -> dict[str, object]:
    """The strictness and regression-shape facts the report states, as numbers."""
    rows = {}
    for name in MULTICLASS_PAPER_LOSSES:
        for y in (1.0, 0.0):
            s = strictness(name, y=y)
            rows[f"{name}|y={y:g}"] = {
                "summary": s.summary(),
                "fraction_stricter": s.fraction_stricter,
                "crossings": s.crossings,
            }
    return {"strictness": rows, "regression": _smae_facts()}


def build_section(context) -> Section:
    """Report section: Figures 1–3, the derivative figure and the strictness findings."""
    figures = make_figures(context.subdir("figures"))
    facts = findings()
    strict = facts["strictness"]
    reg = facts["regression"]
    lines = [
        "The paper defines loss A as *stricter* than loss B on a set of outputs p when "
        "|dA/dp| > |dB/dp| there (only the derivative reaches the weights). Computed here with "
        "autograd in float64 on a grid of 4001 points in (0, 1), crossing points refined by "
        "bisection:",
        "",
        "| loss | target | finding | share of (0, 1) where stricter than BCE |",
        "|---|---|---|---|",
    ]
    for key, row in strict.items():
        name, target = key.split("|")
        summary = str(row["summary"]).replace("|", "\\|")
        lines.append(f"| {_label(name)} | {target} | {summary} | {row['fraction_stricter']:.1%} |")
    l_cross = strict["l|y=1"]["crossings"]
    m_everywhere = strict["m|y=1"]["fraction_stricter"] == 1.0
    lines += [
        "",
        f"- The paper's claim *M is stricter than BCE*: **{'holds' if m_everywhere else 'does not hold'}** "
        "on all of (0, 1) for the true class (y = 1).",
        f"- The paper's claim *L is more lenient than BCE for most outputs*: **holds** for p > "
        f"{l_cross[0]:.4f} (the true class), i.e. on {1 - l_cross[0]:.1%} of (0, 1)." if l_cross else
        "- L vs BCE: no crossing found.",
        "- For a wrong class (y = 0), M and L give no gradient at all; full M is stricter than BCE "
        "everywhere, full L is more lenient below p ≈ "
        f"{strict['full_l|y=0']['crossings'][0]:.3f}." if strict["full_l|y=0"]["crossings"] else "",
        "",
        "Regression shapes (Figure 3): SMAE = e tanh(e/2) is about e²/2 near 0 and approaches |e| with "
        f"no offset (gap to MAE at e = 20: SMAE {reg['gap_to_mae_at_20_smae']:.2e}, log-cosh "
        f"{reg['gap_to_mae_at_20_log_cosh']:.4f} = −log 2, Huber {reg['gap_to_mae_at_20_huber']:.2f} = −δ/2). "
        f"It is not convex: its second derivative is negative for |e| > {reg['smae_concave_beyond']:.3f}.",
    ]
    return Section(
        key="shapes",
        title="Loss shapes and strictness (Figures 1–3)",
        markdown="\n".join(line for line in lines if line is not None),
        figures=figures,
        order=10,
        data=facts,
    )
