"""The dataset card's charts: PNG images in `<home>/corpus/charts/`, linked from README.md.

    charts/licences.png   share of documents and of tokens under each licence
    charts/outcomes.png   per source, a funnel from records read to records kept, one step per outcome
    charts/sources.png    documents and tokens per source

`chart_data` takes the card's figures (`CorpusStatistics`: shard counts from the Parquet files,
outcomes from the lineage store) and returns exactly what is drawn, so the numbers are tested
without looking at pixels; `write_charts` draws them with matplotlib.

Same figures, same bytes: drawn on a bare `Figure` with the Agg canvas (no pyplot state, no
display), under matplotlib's default style whatever the user's matplotlibrc says, with the
bundled DejaVu Sans font, a fixed size and dpi, and no PNG metadata (`Software` would carry
matplotlib's version). Each file is published atomically like every corpus file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opencorpus_dagster.records import Outcome
from opencorpus_dagster.state.atomic import published

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from opencorpus_dagster.publish.card import CorpusStatistics

# matplotlib is imported by the functions that draw (1.7 s of imports): every `opencorpus`
# command imports this module through the card, and only a corpus run draws.

CHARTS_DIR = "charts"  # relative to the corpus folder
LICENCES_CHART = f"{CHARTS_DIR}/licences.png"
OUTCOMES_CHART = f"{CHARTS_DIR}/outcomes.png"
SOURCES_CHART = f"{CHARTS_DIR}/sources.png"
OUTCOME_ORDER = tuple(Outcome)  # kept, filtered, duplicate, quarantined, removed, skipped
MAX_BARS = 15  # licences or sources drawn one by one; the rest are summed into one "others" bar
MAX_FUNNELS = 12  # sources with their own funnel (the largest by records read)
TOKEN_UNIT = "whitespace-separated words"  # what the card counts as a token (card.TOKENS_SQL)
TOKENS_LABEL = f"tokens ({TOKEN_UNIT})"
_DPI = 100
_WIDTH = 10.0  # inches
_FONT = "DejaVu Sans"  # ships with matplotlib: the same glyphs on every machine
# Okabe & Ito's colour-blind-safe palette.
_BLUE, _ORANGE, _GREEN = "#0072B2", "#E69F00", "#009E73"


@dataclass(frozen=True)
class SourceFunnel:
    source: str
    records_in: int  # upstream records read (raw partitions' records_in)
    outcomes: dict[str, int]  # terminal outcome -> records, every outcome of OUTCOME_ORDER present

    def steps(self) -> list[tuple[str, int, int]]:
        """(label, records remaining, records that left at this step): read, then one step per
        outcome that takes records out, in the order the stages meet them, down to kept."""
        remaining = self.records_in
        steps = [("read", remaining, 0)]
        for label, outcomes in _FUNNEL_STEPS:
            left = sum(self.outcomes[o] for o in outcomes)
            remaining -= left
            steps.append((label, remaining, left))
        return steps


# What leaves the corpus at each step of the funnel: not content or unreadable (raw stage),
# a rule (documents), a duplicate (dedup), an opt-out or takedown (documents / takedown).
_FUNNEL_STEPS = (
    ("content", (Outcome.SKIPPED, Outcome.QUARANTINED)),
    ("passed filters", (Outcome.FILTERED,)),
    ("unique", (Outcome.DUPLICATE,)),
    ("kept", (Outcome.REMOVED,)),
)
_LEFT_BY = {"content": "skipped/quarantined", "passed filters": "filtered", "unique": "duplicate", "kept": "removed"}


@dataclass(frozen=True)
class ChartData:
    licences: list[tuple[str, int, int]]  # licence label, documents, tokens; most documents first
    funnels: list[SourceFunnel]  # sorted by source name
    sources: list[tuple[str, int, int]]  # source, documents, tokens; most documents first
    documents: int
    tokens: int


def chart_data(stats: CorpusStatistics) -> ChartData:
    """What the three charts draw, from the card's figures (no drawing, no I/O)."""
    licences = [(license or "(none)", documents, tokens) for license, (documents, tokens) in stats.by_license.items()]
    sources = [(source, documents, tokens) for source, (documents, tokens) in stats.by_source.items()]
    funnels = [
        SourceFunnel(
            source,
            stats.records_in.get(source, 0),
            {str(o): stats.outcomes.get(source, {}).get(str(o), 0) for o in OUTCOME_ORDER},
        )
        for source in sorted(set(stats.records_in) | set(stats.outcomes))
    ]
    return ChartData(
        licences=sorted(licences, key=lambda row: (-row[1], -row[2], row[0])),
        funnels=funnels,
        sources=sorted(sources, key=lambda row: (-row[1], -row[2], row[0])),
        documents=stats.documents,
        tokens=stats.tokens,
    )


def write_charts(folder: Path, data: ChartData) -> list[Path]:
    """Draw and publish the three charts under `<folder>/charts/` (a release folder); returns their paths."""
    import matplotlib
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    written = []
    charts = ((LICENCES_CHART, draw_licences), (OUTCOMES_CHART, draw_outcomes), (SOURCES_CHART, draw_sources))
    for relative, draw in charts:
        target = folder / relative
        with matplotlib.style.context("default"), matplotlib.rc_context(_RC):
            figure = draw(data)
            FigureCanvasAgg(figure)
            with published(target) as temporary:
                figure.savefig(temporary, format="png", dpi=_DPI, metadata={"Software": None})
        written.append(target)
    return written


_LABEL_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}
_RC = {
    "font.family": "sans-serif",
    "font.sans-serif": [_FONT],
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "figure.titlesize": 13,
    "figure.titleweight": "bold",
}


def draw_licences(data: ChartData) -> Figure:
    from matplotlib.ticker import StrMethodFormatter

    rows = _top(data.licences, "other licences")
    figure, (by_documents, by_tokens) = _figure(len(rows), columns=2)
    labels = [label for label, _, _ in rows]
    for axes, column, total, title in (
        (by_documents, 1, data.documents, "Share of documents"),
        (by_tokens, 2, data.tokens, "Share of tokens"),
    ):
        shares = [100 * row[column] / total if total else 0.0 for row in rows]
        _bars(axes, labels, shares, [f"{s:.1f}% ({row[column]:,})" for s, row in zip(shares, rows, strict=True)], _BLUE)
        axes.set_title(title, loc="left")
        axes.set_xlim(0, 100 * 1.35)
        axes.set_xticks([0, 25, 50, 75, 100])
        axes.xaxis.set_major_formatter(StrMethodFormatter("{x:.0f}%"))
    by_tokens.tick_params(labelleft=False)
    figure.suptitle(f"Licences of the {data.documents:,} documents (tokens: {TOKEN_UNIT})", x=0.01, ha="left")
    return figure


def draw_sources(data: ChartData) -> Figure:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    rows = _top(data.sources, "other sources")
    figure, (documents, tokens) = _figure(len(rows), columns=2)
    labels = [source for source, _, _ in rows]
    _bars(documents, labels, [d for _, d, _ in rows], [f"{d:,}" for _, d, _ in rows], _GREEN)
    _bars(tokens, labels, [t for _, _, t in rows], [f"{t:,}" for _, _, t in rows], _ORANGE)
    documents.set_title("Documents", loc="left")
    tokens.set_title("Tokens", loc="left")
    tokens.tick_params(labelleft=False)
    for axes in (documents, tokens):
        axes.set_xlim(0, max(axes.get_xlim()[1], 1) * 1.35)
        axes.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        axes.xaxis.set_major_formatter(FuncFormatter(_compact))
    title = f"Documents and {TOKENS_LABEL} per source ({len(data.sources)} sources)"
    figure.suptitle(title, x=0.01, ha="left")
    return figure


def draw_outcomes(data: ChartData) -> Figure:
    from matplotlib.figure import Figure

    funnels = sorted(data.funnels, key=lambda f: (-f.records_in, f.source))[:MAX_FUNNELS]
    funnels.sort(key=lambda f: f.source)
    columns = 1 if len(funnels) <= 1 else 2
    rows = max(1, -(-len(funnels) // columns))
    height = 0.6 + 2.4 * rows
    figure = Figure(figsize=(_WIDTH, height), dpi=_DPI, layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes, funnel in zip(grid.flat, funnels, strict=False):
        steps = funnel.steps()
        width = max(funnel.records_in, 1)
        values = [remaining for _, remaining, _ in steps]
        positions = range(len(steps))
        # Centred bars: a funnel that narrows as records leave; what left at a step is written
        # in a column right of the widest bar, in the room the x range keeps free there.
        colours = [_BLUE] * (len(values) - 1) + [_GREEN]
        axes.barh(positions, values, left=[(width - v) / 2 for v in values], color=colours, height=0.72)
        for y, (label, value, left) in zip(positions, steps, strict=True):
            axes.text(width / 2, y, _count(value), ha="center", va="center", bbox=_LABEL_BOX)
            if left:
                axes.text(width * 1.04, y, f"−{_count(left)} {_LEFT_BY[label]}", va="center", color="#555555")
        axes.set_yticks(list(positions), [label for label, _, _ in steps])
        axes.invert_yaxis()
        axes.set_xlim(0, width * 1.9)
        axes.set_xticks([])
        axes.spines[["left", "bottom"]].set_visible(False)
        axes.tick_params(axis="y", length=0)
        kept = funnel.outcomes[Outcome.KEPT]
        share = f" ({100 * kept / funnel.records_in:.1f}%)" if funnel.records_in else ""
        kept_of = f"{_count(kept)} of {_count(funnel.records_in)} records kept{share}"
        axes.set_title(f"{_clip(funnel.source)}\n{kept_of}", loc="left", fontsize=10)
    for axes in list(grid.flat)[len(funnels) :]:
        axes.set_axis_off()
    if not funnels:
        grid.flat[0].text(0.5, 0.5, "no records were read", ha="center", va="center", transform=grid.flat[0].transAxes)
    shown = "" if len(funnels) == len(data.funnels) else f", the {len(funnels)} largest of {len(data.funnels)} sources"
    figure.suptitle(f"From records read to records kept, per source{shown}", x=0.01, ha="left")
    return figure


def _top(rows: list[tuple[str, int, int]], others: str) -> list[tuple[str, int, int]]:
    """The first MAX_BARS - 1 rows and one row summing the rest (all rows when they fit)."""
    if len(rows) <= MAX_BARS:
        return rows
    head, tail = rows[: MAX_BARS - 1], rows[MAX_BARS - 1 :]
    return [*head, (f"{len(tail)} {others}", sum(r[1] for r in tail), sum(r[2] for r in tail))]


def _figure(bars: int, columns: int) -> tuple[Figure, list]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(_WIDTH, 1.2 + 0.42 * max(bars, 1)), dpi=_DPI, layout="constrained")
    return figure, list(figure.subplots(1, columns).flat)


def _bars(axes, labels: list[str], values: list[float], texts: list[str], colour: str) -> None:
    positions = range(len(labels))
    axes.barh(positions, values, color=colour, height=0.66)
    axes.set_yticks(list(positions), [_clip(label) for label in labels])
    axes.invert_yaxis()
    axes.tick_params(axis="y", length=0)
    for y, value, text in zip(positions, values, texts, strict=True):
        axes.annotate(text, (value, y), xytext=(4, 0), textcoords="offset points", va="center")
    if not labels:
        axes.text(0.5, 0.5, "no documents", ha="center", va="center", transform=axes.transAxes)


def _compact(value: float, _position: int | None = None) -> str:
    """An axis tick: 950, 12k, 1.2M, 3B (the bars' own labels give the exact counts)."""
    for bound, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= bound:
            return f"{value / bound:.3g}{suffix}"
    return f"{value:.0f}"


def _count(value: int) -> str:
    """A count in a funnel: exact below 100,000, else 3 significant digits (the card's
    Processing table has every count exact)."""
    return f"{value:,}" if value < 100_000 else _compact(value)


def _clip(label: str, limit: int = 40) -> str:
    """A licence expression or source name short enough for a tick label (the card's tables have it whole)."""
    return label if len(label) <= limit else label[: limit - 1] + "…"
