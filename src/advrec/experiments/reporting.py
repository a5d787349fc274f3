"""The building blocks of the experiment report (``advrec.experiments.report``): the rows of
an output folder grouped by model × condition over seeds, the :class:`Section` a scenario
contributes, statistics over seeds, HTML and inline-SVG helpers. Nothing here knows a scenario.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advrec.errors import AdvrecError

CLEAN = "none"
CLEAN_STYLE = (0, (1, 2))  # dotted
TARGET_METRIC = re.compile(r"target_hr@(\d+)(_before)?")

Row = dict[str, Any]


@dataclass(frozen=True)
class Section:
    """One ``<section>`` of the report: its anchor, its title in the navigation, its HTML."""

    id: str
    title: str
    html: str


# ---------------------------------------------------------------------------- data
@dataclass
class Group:
    """The cells of one model under one condition (clean, or one attack variant at one ε)."""

    label: str
    attack: str  # "none" or the attack variant's name, e.g. "fgsm" or "fgsm (norm=linf)"
    method: str  # "none", "fgsm", "random", "pgd", or a shilling attack's name
    eps: float | None
    scenario: str = "clean"  # "clean", "perturbation" or "shilling"
    rows: list[Row] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.method == CLEAN

    @property
    def condition(self) -> tuple[str, float | None]:
        return self.attack, self.eps


@dataclass
class ReportData:
    """Everything the report shows, read once from the output folder."""

    folder: Path
    config: dict[str, Any] | None
    rows: list[Row]
    stale: int  # rows of cells the current experiment.json no longer has
    planned: int | None  # cells the current experiment.json expands into
    groups: list[Group]
    metrics: list[str]  # the evaluator's metrics (target hit ratios are the shilling section's)
    test: str

    def colour(self, label: str) -> str:
        """One matplotlib colour per model, the same in every plot."""
        labels = unique(g.label for g in self.groups)
        return f"C{labels.index(label) % 10}"


def attack_names(rows: list[Row], prefixes: Mapping[str, str] | None = None) -> dict[str, str]:
    """Row key -> the attack variant's name: the method plus the options (other than ε) that
    take more than one value among that method's cells, after its scenario's prefix in
    ``prefixes`` (e.g. ``"shilling: "``); ``"none"`` for clean cells."""
    options: dict[tuple[str, str], dict[str, set[str]]] = {}
    for r in rows:
        if r["attack_config"]:
            per = options.setdefault((r["scenario"], r["attack"]), {})
            for k, v in _attack_options(r["attack_config"]).items():
                per.setdefault(k, set()).add(json.dumps(v, sort_keys=True))
    names = {}
    for r in rows:
        if not r["attack_config"]:
            names[r["key"]] = CLEAN
            continue
        varying = options[(r["scenario"], r["attack"])]
        shown = [f"{k}={_plain(v)}" for k, v in _attack_options(r["attack_config"]).items()
                 if len(varying.get(k, ())) > 1]
        prefix = (prefixes or {}).get(r["scenario"], "")
        names[r["key"]] = prefix + r["attack"] + (f" ({', '.join(shown)})" if shown else "")
    return names


def _attack_options(cfg: dict[str, Any]) -> dict[str, Any]:
    """The options that tell attack variants apart: not the method nor ε, and not a shilling
    attack's targets when they were drawn (``n_targets``), as those differ from seed to seed."""
    drawn = "n_targets" in cfg
    return {k: v for k, v in cfg.items()
            if k not in ("method", "attack", "eps") and not (drawn and k == "targets")}


def _plain(v: Any) -> str:
    return ",".join(map(str, v)) if isinstance(v, list) else str(v)


def group_rows(rows: list[Row], prefixes: Mapping[str, str] | None = None) -> list[Group]:
    """Rows grouped by (model label, attack variant, ε) over seeds: models in the order of the
    rows, clean first, then attack variants in order of appearance, ε ascending."""
    names = attack_names(rows, prefixes)
    groups: dict[tuple, Group] = {}
    for r in rows:
        key = (r["model_label"], names[r["key"]], r["eps"])
        if key not in groups:
            groups[key] = Group(r["model_label"], names[r["key"]], r["attack"], r["eps"],
                                r["scenario"])
        groups[key].rows.append(r)
    labels = unique(g.label for g in groups.values())
    attacks = unique(g.attack for g in groups.values() if not g.clean)
    for g in groups.values():
        g.rows.sort(key=lambda r: r["seed"])

    def order(g: Group) -> tuple:  # shilling groups have no ε
        return (labels.index(g.label), -1 if g.clean else attacks.index(g.attack), g.eps or 0.0)

    return sorted(groups.values(), key=order)


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))



# ---------------------------------------------------------------------------- statistics
def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value) of finite values."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(arr) == 0:
        return math.nan, None
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else None


def group_stats(g: Group, metric: str) -> tuple[float, float | None]:
    return mean_std([r["metrics"].get(metric) for r in g.rows])


def clean_group(groups: list[Group], label: str) -> Group | None:
    return next((g for g in groups if g.label == label and g.clean), None)


def relative_change(value: float, reference: float) -> float | None:
    """``value / reference - 1``, or None when undefined."""
    if not (math.isfinite(value) and math.isfinite(reference)) or reference == 0:
        return None
    return value / reference - 1.0


def metric_cell(g: Group, clean: Group | None, metric: str) -> str:
    """``mean ± std`` of ``metric`` over the seeds of ``g`` and, given the clean group of the same
    model, the relative change of the mean vs it."""
    mean, std = group_stats(g, metric)
    text = esc(fmt_num(mean)) + (f" ± {esc(fmt_num(std))}" if std is not None else "")
    if clean is not None:
        change = relative_change(mean, group_stats(clean, metric)[0])
        cls = "change" + ("" if change is None or abs(change) < 5e-4
                          else " down" if change < 0 else " up")
        text += " " + tag("span", esc(fmt_pct(change)), class_=cls)
    return text


# ---------------------------------------------------------------------------- HTML
def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt_num(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:.{digits}f}"


def fmt_p(p: float) -> str:
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def fmt_eps(eps: float | None) -> str:
    return "—" if eps is None else f"{eps:g}"


def fmt_pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:+.1f} %".replace("-", "−")


def tag(name: str, body: str = "", **attrs: Any) -> str:
    """``<name attrs>body</name>``; attribute values escaped, ``class_`` -> ``class``."""
    parts = "".join(f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"'
                    for k, v in attrs.items() if v is not None)
    return f"<{name}{parts}>{body}</{name}>"


def table(head: list[str], rows: list[list[str]], **attrs: Any) -> str:
    """An HTML table of already-escaped cells; the first ``th`` row is the header."""
    thead = tag("thead", tag("tr", "".join(tag("th", h, scope="col") for h in head)))
    tbody = tag("tbody", "".join(tag("tr", "".join(tag("td", c) for c in row)) for row in rows))
    return tag("table", thead + tbody, **attrs)


# ---------------------------------------------------------------------------- figures
def new_figure(size: tuple[float, float] = (6.4, 4.0)):
    """A matplotlib figure on an Agg canvas (no pyplot, so no global backend state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_svg(fig, prefix: str) -> str:
    """``fig`` as an inline ``<svg>`` element (text kept as text) with ids under ``prefix``."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "advrec"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return scope_svg_ids(buf.getvalue(), prefix)


def scope_svg_ids(svg: str, prefix: str) -> str:
    """The ``<svg>`` element alone, every id (and reference to it) prefixed so several SVGs can
    live in one HTML document."""
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg[svg.index("<svg"):], flags=re.S)
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)",
                 lambda m: f"url(#{prefix}-{m.group(1)})" if m.group(1) in ids else m.group(0),
                 svg)
    return re.sub(r'href="#([^"]+)"',
                  lambda m: f'href="#{prefix}-{m.group(1)}"' if m.group(1) in ids else m.group(0),
                  svg)


def figure_html(fig, caption: str, id_: str, wide: bool = False) -> str:
    """``<figure class="plot" id=…>`` holding the figure's inline SVG and a caption."""
    svg = figure_svg(fig, id_)
    return tag("figure", svg + tag("figcaption", esc(caption)),
               class_="plot wide" if wide else "plot", id=id_)


def legend(ax) -> None:
    """The legend right of the axes, entries grouped by model (names are ``model · what``)."""
    handles, names = ax.get_legend_handles_labels()
    models = unique(n.split(" · ")[0] for n in names)
    order = sorted(range(len(names)), key=lambda i: models.index(names[i].split(" · ")[0]))
    ax.legend([handles[i] for i in order], [names[i] for i in order], fontsize=8,
              loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)


# ---------------------------------------------------------------------------- significance
@dataclass
class Comparison:
    """A paired test of two conditions, per seed, for one metric."""

    per_seed: dict[int, float]  # seed -> p-value
    mean_diff: float  # mean over seeds of mean(a - b) over users

    @property
    def p_max(self) -> float:
        return max(self.per_seed.values())


def per_user_block(row: Row, metric: str) -> dict | None:
    """The per-user values of a cell that hold ``metric`` (the evaluation's, or a scenario's own
    block such as the shilling targets'), with their ``users``; None when none does."""
    per_user = row.get("per_user") or {}
    if metric in per_user:
        return per_user
    return next((b for b in per_user.values() if isinstance(b, dict) and metric in b), None)


def paired_over_users(a: Row, b: Row, metric: str, test: str) -> dict[str, float] | None:
    """:func:`paired_test` of one metric of two cells, over the users both evaluated (finite
    values only); None when it cannot be computed."""
    from advrec.evaluation.significance import paired_test

    pa, pb = per_user_block(a, metric), per_user_block(b, metric)
    if pa is None or pb is None:
        return None
    ua, ub = np.asarray(pa["users"]), np.asarray(pb["users"])
    _, ia, ib = np.intersect1d(ua, ub, assume_unique=True, return_indices=True)
    x = np.asarray(pa[metric], dtype=float)[ia]
    y = np.asarray(pb[metric], dtype=float)[ib]
    ok = np.isfinite(x) & np.isfinite(y)
    try:
        res = paired_test(x[ok], y[ok], test)
    except AdvrecError:
        return None
    return res if math.isfinite(res["p_value"]) else None


def compare(pairs: list[tuple[Row, Row]], metric: str, test: str) -> Comparison | None:
    """Paired tests of each (a, b) pair of cells (one pair per seed)."""
    per_seed, diffs = {}, []
    for a, b in pairs:
        res = paired_over_users(a, b, metric, test)
        if res is not None:
            per_seed[a["seed"]] = res["p_value"]
            diffs.append(res["mean_diff"])
    if not per_seed:
        return None
    return Comparison(dict(sorted(per_seed.items())), float(np.mean(diffs)))
