"""Figures (matplotlib, the ``plot`` extra): a shared style and a saver that writes PNG + SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from losslab._paths import ensure_folder, inside, safe_component, write_bytes
from losslab.report import Figure

# One colour per loss, the same in every figure of a report.
LOSS_COLORS: dict[str, str] = {
    "cross_entropy": "#222222",
    "bce": "#222222",
    "binary_cross_entropy": "#222222",
    "m": "#d62728",
    "full_m": "#ff7f0e",
    "l": "#1f77b4",
    "full_l": "#17becf",
    "mse": "#7f7f7f",
    "mae": "#222222",
    "huber": "#2ca02c",
    "smooth_l1": "#bcbd22",
    "log_cosh": "#9467bd",
    "smae": "#d62728",
}
_FALLBACK = ("#8c564b", "#e377c2", "#bcbd22", "#2ca02c", "#9467bd", "#7f7f7f")


def color_for(name: str, index: int = 0) -> str:
    return LOSS_COLORS.get(name, _FALLBACK[index % len(_FALLBACK)])


def plot_text(value: object) -> str:
    """``str(value)`` for a figure's title, axis label or legend entry, shown literally.

    matplotlib reads text between two ``$`` as mathtext, so a loss or column name with a
    ``$`` in it could be typeset as a formula or crash the plot (an unbalanced or invalid
    expression); each ``$`` is escaped as ``\\$``, which matplotlib prints as a dollar sign.
    Use it for every label built from data (names read from a database or a CSV).
    """
    return str(value).replace("$", r"\$")


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend, with losslab's style."""
    try:
        import matplotlib
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "figures need matplotlib: pip install 'losslab[plot]'"
        ) from error
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 130,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "font.size": 10,
            "svg.fonttype": "none",
        }
    )
    return plt


def save_figure(fig: Any, out_dir: str | Path, stem: str, caption: str) -> Figure:
    """Save ``fig`` as ``stem.png`` and ``stem.svg`` in ``out_dir`` and close it.

    ``stem`` becomes one path component (:func:`losslab._paths.safe_component`); the files
    are written inside ``out_dir``, replacing (never following) a symlink there."""
    import io

    out = ensure_folder(out_dir, option="out")
    name = safe_component(stem)
    png, svg = inside(out, f"{name}.png", file=True), inside(out, f"{name}.svg", file=True)
    for path, kind in ((png, "png"), (svg, "svg")):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=kind, bbox_inches="tight")
        write_bytes(path, buffer.getvalue())
    import matplotlib.pyplot as plt

    plt.close(fig)
    return Figure(png=png, caption=caption, svg=svg)
