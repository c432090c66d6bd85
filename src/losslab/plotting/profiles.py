"""The shape figure of one registered loss: its value and slope along one variable."""

from __future__ import annotations

from pathlib import Path

from losslab.plotting import color_for, pyplot, save_figure
from losslab.report import Figure


def _scale(axis, values) -> None:
    """Symmetric-log y where a curve spans several decades (M near p = 0), linear otherwise."""
    top = float(values.abs().max())
    if top > 50:
        axis.set_yscale("symlog", linthresh=1.0)


def draw_profile(name: str, out_dir: str | Path, *, stem: str | None = None) -> Figure:
    """Draw ``name``'s :func:`losslab.profiles.profile` as two panels: value and slope.

    Args:
        name: a registered loss (name or alias).
        out_dir: the folder for ``stem.png`` and ``stem.svg``.
        stem: the file name without suffix (default: the loss's registered name).

    Returns:
        The saved :class:`~losslab.report.Figure`.
    """
    from losslab.profiles import profile

    curves = profile(name)
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 2.6))
    for index, item in enumerate(curves):
        colour = color_for(item.name, index) if index == 0 else color_for("", index)
        style = "-" if index == 0 else "--"
        label = item.label or None
        left.plot(item.x.numpy(), item.value.numpy(), style, color=colour, label=label, lw=1.6)
        right.plot(item.x.numpy(), item.slope.numpy(), style, color=colour, label=label, lw=1.6)
    for axis, title, key in ((left, "loss", "value"), (right, "slope d loss / d x", "slope")):
        axis.set_xlabel(curves[0].variable)
        axis.set_title(title, fontsize=10)
        _scale(axis, __import__("torch").cat([getattr(c, key) for c in curves]))
    if any(c.label for c in curves):
        left.legend(fontsize=8)
    info_name = curves[0].name
    fig.suptitle(info_name, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, out_dir, stem or info_name, f"{info_name}: value and slope")
