"""PNG plots for the bench/ scripts (not a script itself): bar charts with matplotlib.

``bar_chart``: grouped vertical bars. ``stacked_bars``: horizontal bars made of labelled
segments, some of which may be estimates rather than measurements.

matplotlib is optional (it is not in the project's dependencies): ``available()`` says
whether it imports, and both chart functions return False, writing nothing, when it does not.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Hatching marks segments that were not measured (documented defaults, estimates), so a
# reader cannot mistake them for results even in a greyscale print.
ESTIMATE_HATCH = "//"


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


def note(host: Mapping[str, str], command: str) -> str:
    """The line under a chart: the machine (``common.machine()``), its load when the run
    began, and the command that measures it again."""
    return f"{host['cpu']}, {host['cores']} cores, load {host['load_average']}; {command}"


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
    # Headroom over the tallest bar, so the legend need not sit on the value labels.
    tallest = max([v for values in series.values() for v in values if v is not None] or [0.0])
    ax.set_ylim(0, max(tallest, reference or 0.0) * 1.2 or 1.0)
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


@dataclass(frozen=True)
class Segment:
    """One part of a stacked bar: its legend label, its length and whether it is an estimate.

    Segments with the same label and ``estimated`` flag share a colour and one legend entry,
    across all bars of a chart.
    """

    label: str
    value: float
    estimated: bool = False


def _note_space(note: str) -> float:
    """Fraction of the figure height to keep free under the axes for the note's lines."""
    return 0.025 * (note.count("\n") + 1) + 0.01 if note else 0.0


def stacked_bars(
    path: Path,
    title: str,
    bars: Sequence[tuple[str, Sequence[Segment]]],
    xlabel: str,
    *,
    note: str = "",
    reference: float | None = None,
    reference_label: str = "",
    digits: int = 2,
) -> bool:
    """One PNG: horizontal bars, top to bottom in the order given, each a stack of segments.

    Each bar is ``(label, segments)``; a bar without segments leaves an empty row (a gap
    between groups). The total goes at the end of each bar, and a segment's own value inside
    it when there is room. Estimated segments are hatched. ``reference`` draws a dashed
    vertical line (e.g. a target) named ``reference_label`` in the legend; ``note`` (may have
    several lines) goes under the chart. Returns False when matplotlib is missing.
    """
    plt = _pyplot()
    if plt is None:
        return False
    patches = importlib.import_module("matplotlib.patches")
    # Long bar labels are why the bars are horizontal: they read on the y axis unrotated.
    fig, ax = plt.subplots(figsize=(9, 1.6 + 0.5 * len(bars)), dpi=100)
    colours: dict[tuple[str, bool], Any] = {}
    cycle = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
    totals = [sum(s.value for s in segments) for _, segments in bars]
    longest = max([*totals, reference or 0.0, 1e-9])
    fmt = f"{{:,.{digits}f}}"
    for row, (_, segments) in enumerate(bars):
        left = 0.0
        for segment in segments:
            key = (segment.label, segment.estimated)
            if key not in colours:
                colours[key] = next(cycle)
            ax.barh(
                row,
                segment.value,
                0.7,
                left=left,
                color=colours[key],
                alpha=0.55 if segment.estimated else 1.0,
                hatch=ESTIMATE_HATCH if segment.estimated else None,
                edgecolor="white",
                linewidth=0.5,
            )
            # Inside labels only where they fit; the total at the end always shows.
            if len(segments) > 1 and segment.value >= 0.09 * longest:
                ax.text(
                    left + segment.value / 2,
                    row,
                    fmt.format(segment.value),
                    ha="center",
                    va="center",
                    fontsize=7,
                )
            left += segment.value
        if segments:
            ax.text(
                left + 0.005 * longest,
                row,
                " " + fmt.format(left),
                ha="left",
                va="center",
                fontsize=8,
                fontweight="bold",
            )
    handles = [
        patches.Patch(
            facecolor=colour,
            alpha=0.55 if estimated else 1.0,
            hatch=ESTIMATE_HATCH if estimated else None,
            edgecolor="white",
            label=label,
        )
        for (label, estimated), colour in colours.items()
    ]
    if reference is not None:
        line = ax.axvline(reference, linestyle="--", color="grey", linewidth=1)
        if reference_label:
            line.set_label(reference_label)
            handles.append(line)
    ax.set_yticks(range(len(bars)))
    ax.set_yticklabels([label for label, _ in bars], fontsize=8)
    ax.tick_params(axis="y", length=0)  # no tick marks, which would also mark the gap rows
    ax.invert_yaxis()  # first bar on top, in reading order
    ax.set_xlim(0, longest * 1.15)  # room for the totals after the longest bar
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.grid(axis="x", alpha=0.3)
    if note:
        fig.text(0.01, 0.01, note, fontsize=6, color="dimgrey", va="bottom")
    fig.tight_layout(rect=(0, _note_space(note), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True
