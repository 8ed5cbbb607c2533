"""The look every report figure shares: one colour per tokenizer, one line style and
marker per architecture, legends outside the data, labels that do not overlap.

Why one module: the same run appears in several figures (scaling, compute, curves, the
tokenizer study), and a reader matches them by colour and line. So the assignment must
not depend on which figure draws it or on which runs happen to be in it:

- **tokenizers** get colours from a colour-blind-safe qualitative palette (Paul Tol's
  "muted" nine, plus a dark grey) in a canonical order: the tokenizer-kind registry's
  order (``symato.text.kinds.KINDS``), then the kind's size parameter, then the name.
  The set ordered is the workflow's ``tokenizers:`` list together with every tokenizer in
  the figure's data, so within one workflow every figure gives a tokenizer the same colour,
  and a rerun gives the same colours (no dict or hash order is involved);
- **architectures** get a line style and a marker in the order of the architecture
  registry (``symato.models.registry.ARCHITECTURES``): fixed for every figure and every
  config, and a new registry entry gets the next one.

More than ``len(PALETTE)`` tokenizers repeat colours (the figure's legend still names
each); the architecture's marker and line style are the second channel.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

# Paul Tol's "muted" qualitative scheme (colour-blind safe), most distinct first, then a
# dark grey: https://personal.sron.nl/~pault/#sec:qualitative
PALETTE = ("#332288", "#CC6677", "#117733", "#DDAA33", "#88CCEE", "#882255", "#44AA99",
           "#999933", "#AA4499", "#555555")
# One per architecture, in registry order (solid, dashed, dash-dot, dotted, then more).
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (1, 3)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
BAND_ALPHA = 0.12      # a 95% band; only drawn where few bands share a panel
MAX_BANDS = 3          # more bands than this in one panel merge into one colour: none drawn
LEGEND_FONTSIZE = 7


def tokenizer_key(name: str) -> tuple[int, float, str]:
    """Canonical sort key of a tokenizer name: (kind's registry index, size, name).

    ``symato < symato+256 < symato+1280 < symato-bpe2816 < bytes < sp-bpe2816 < ...``;
    a name of no known kind sorts after every known one, by name.
    """
    from symato.text.kinds import KINDS

    for index, kind in enumerate(KINDS.values()):
        match = re.fullmatch(kind.pattern, name)
        if match:
            size = float(match.group(1)) if match.groups() and match.group(1) else 0.0
            return (index, size, name)
    return (len(KINDS), 0.0, name)


def tokenizer_order(names: Iterable[Any]) -> list[str]:
    """The distinct tokenizer names in canonical order (``tokenizer_key``)."""
    return sorted({str(n) for n in names}, key=tokenizer_key)


def arch_order(names: Iterable[Any] = ()) -> list[str]:
    """Every registered architecture in registry order, then any other name sorted."""
    from symato.models.registry import ARCHITECTURES

    known = list(ARCHITECTURES)
    return known + sorted({str(n) for n in names} - set(known))


def shade(colour: Any, amount: float) -> tuple[float, float, float]:
    """``colour`` mixed with white: 0 is the colour itself, 1 white (lighter = smaller)."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


class Style:
    """Colour per tokenizer, line style and marker per architecture (module docstring).

    ``tokenizers`` should be the workflow's ``tokenizers:`` list plus those in the data
    (``Style.of`` adds the data's); a tokenizer asked for that was not given gets the
    next colour, so a figure never fails on a stray name. ``archs`` adds architectures
    the registry does not know (the registered ones are always there).
    """

    def __init__(self, archs: Iterable[Any] = (), tokenizers: Iterable[Any] = ()):
        self.tokenizers = tokenizer_order(tokenizers)
        self.archs = arch_order(archs)
        self.colour = {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(self.tokenizers)}
        self.line = {a: LINESTYLES[i % len(LINESTYLES)] for i, a in enumerate(self.archs)}
        self.marker = {a: MARKERS[i % len(MARKERS)] for i, a in enumerate(self.archs)}

    @classmethod
    def of(cls, *frames: Any, tokenizers: Iterable[Any] = ()) -> Style:
        """The style for ``tokenizers`` (the config's) and every tokenizer and
        architecture named in the data frames ``frames``."""
        toks = {str(t) for t in tokenizers}
        archs: set[str] = set()
        for f in frames:
            if "tokenizer" in f.columns:
                toks |= {str(t) for t in f["tokenizer"].dropna()}
            if "arch" in f.columns:
                archs |= {str(a) for a in f["arch"].dropna()}
        return cls(archs, toks)

    def tok(self, name: Any) -> str:
        """The colour of tokenizer ``name``."""
        name = str(name)
        if name not in self.colour:
            self.tokenizers.append(name)
            self.colour[name] = PALETTE[(len(self.tokenizers) - 1) % len(PALETTE)]
        return self.colour[name]

    def ls(self, arch: Any) -> Any:
        """The line style of architecture ``arch``."""
        self._arch(str(arch))
        return self.line[str(arch)]

    def mk(self, arch: Any) -> str:
        """The marker of architecture ``arch``."""
        self._arch(str(arch))
        return self.marker[str(arch)]

    def _arch(self, arch: str) -> None:
        if arch not in self.line:
            i = len(self.archs)
            self.archs.append(arch)
            self.line[arch] = LINESTYLES[i % len(LINESTYLES)]
            self.marker[arch] = MARKERS[i % len(MARKERS)]

    def handles(
        self, tokenizers: Iterable[Any] = (), archs: Iterable[Any] = (),
        extra: Sequence[tuple[Any, str]] = (),
    ) -> tuple[list[Any], list[str]]:
        """Legend entries: a colour swatch per tokenizer, a black line + marker per
        architecture (both in canonical order, only those given), then ``extra``."""
        from matplotlib.lines import Line2D

        handles: list[Any] = []
        labels: list[str] = []
        for t in tokenizer_order(tokenizers):
            handles.append(Line2D([], [], color=self.tok(t), lw=6, solid_capstyle="butt"))
            labels.append(t)
        present = {str(a) for a in archs}
        for a in [a for a in arch_order(present) if a in present]:
            handles.append(Line2D([], [], color="black", ls=self.ls(a), marker=self.mk(a),
                                  ms=4, lw=1.2))
            labels.append(a)
        for handle, label in extra:
            handles.append(handle)
            labels.append(label)
        return handles, labels


def legend_below(fig: Any, handles: list[Any], labels: list[str], ncols: int | None = None,
                 notes: Sequence[str] = ()) -> Any:
    """One legend for the whole figure, under every axes (``layout="constrained"``
    figures make room for it), so it never hides data; ``notes`` (what could not be drawn
    and why) stand above its entries, in grey."""
    if not handles and not notes:
        return None
    ncols = ncols or (len(handles) if len(handles) <= 8 else -(-len(handles) // 2))
    legend = fig.legend(handles, labels, loc="outside lower center", ncols=max(1, ncols),
                        fontsize=LEGEND_FONTSIZE, title="\n".join(notes) or None,
                        title_fontsize=LEGEND_FONTSIZE, frameon=False, alignment="left")
    legend.get_title().set_color("0.35")
    return legend


def group_notes(notes: Sequence[tuple[str, str]], width: int = 110, names: int = 6) -> list[str]:
    """(group, why) pairs as a few lines: one per reason, naming up to ``names`` groups.

    Why: a grid of 36 groups without a fit would otherwise be 36 lines of notes.
    """
    import textwrap

    by_reason: dict[str, list[str]] = {}
    for group, why in notes:
        by_reason.setdefault(why, []).append(group)
    lines = []
    for why, groups in by_reason.items():
        more = f" and {len(groups) - names} more" if len(groups) > names else ""
        lines += textwrap.wrap(f"{why}: {', '.join(groups[:names])}{more}", width,
                               subsequent_indent="    ")
    return lines


def label_ends(ax: Any, items: Sequence[tuple[float, float, str, Any]], gap_pt: float = 8.0,
               fontsize: float = 6.5) -> list[Any]:
    """Labels right of the axes at each line's end height, moved apart vertically so
    no two overlap.

    ``items``: (x, y) of a line's last point in data coordinates, the text and its
    colour. Why outside and spread: labels at the ends of nearly equal curves collide,
    and labels over the data hide it. Call it when the axes' limits are final (after
    everything is drawn): it lays the figure out to measure, and measures again once
    the labels have taken their room.
    """
    if not items:
        return []
    texts = [ax.annotate(text, xy=(1.0, y), xycoords=("axes fraction", "data"),
                         xytext=(3, 0), textcoords="offset points", fontsize=fontsize,
                         color=colour, va="center", ha="left", annotation_clip=False)
             for _, y, text, colour in items]
    for _ in range(3):  # the layout moves when the labels take room: measure again
        ax.figure.draw_without_rendering()
        _spread(ax, texts, [y for _, y, _, _ in items], gap_pt)
    return texts


def _spread(ax: Any, texts: list[Any], ys: list[float], gap_pt: float) -> None:
    """Offset each label (in points) from its line's height so consecutive ones are at
    least ``gap_pt`` apart, the stack centred on the lines it labels."""
    per_pt = ax.figure.dpi / 72.0
    at = [float(ax.transData.transform((1.0, y))[1]) / per_pt for y in ys]  # in points
    order = sorted(range(len(at)), key=lambda i: at[i])
    placed = dict.fromkeys(order, 0.0)
    prev = -float("inf")
    for i in order:  # push up from the bottom
        placed[i] = max(at[i], prev + gap_pt)
        prev = placed[i]
    shift = sum(placed[i] - at[i] for i in order) / len(order)
    prev = -float("inf")
    for i in order:  # centre the stack, keeping the gaps
        placed[i] = max(placed[i] - shift, prev + gap_pt)
        prev = placed[i]
    for i, text in enumerate(texts):
        text.xyann = (3, placed[i] - at[i])
