"""PNG plots for the bench/ scripts (not a script itself): grouped bar charts with matplotlib.

matplotlib is optional (it is not in the project's dependencies): ``available()`` says
whether it imports, and ``bar_chart`` returns False, writing nothing, when it does not.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _pyplot() -> Any | None:
    """matplotlib.pyplot on the non-interactive Agg backend, None when not installed."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        return None
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def available() -> bool:
    """Whether matplotlib can be imported."""
    return importlib.util.find_spec("matplotlib") is not None


def bar_chart(
    path: Path,
    title: str,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    ylabel: str,
    *,
    note: str = "",
    reference: float | None = None,
) -> bool:
    """One PNG: a group of bars per ``groups`` entry, one bar per series (None: no bar).

    ``reference`` draws a dashed horizontal line (e.g. a target); ``note`` goes under the
    chart (e.g. the machine and the command). Returns False when matplotlib is missing.
    """
    plt = _pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    width = 0.8 / max(len(series), 1)
    for index, (name, values) in enumerate(series.items()):
        xs = [g + (index - (len(series) - 1) / 2) * width for g in range(len(groups))]
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(xs, heights, width * 0.95, label=name)
        for bar, value in zip(bars, values, strict=True):
            if value is not None:
                text = f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
                ax.annotate(
                    text,
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    if reference is not None:
        ax.axhline(reference, linestyle="--", color="grey", linewidth=1)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    if note:
        fig.text(0.01, 0.01, note, fontsize=6, color="dimgrey")
    fig.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True
