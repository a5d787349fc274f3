"""The experiment report: one self-contained HTML file (no network needed to open it) with the
configuration, a results table (mean ± std over seeds), paired significance tests over users,
inline SVG plots (metric vs ε, training curves) and, when the experiment has shilling cells, their
own section (accuracy, target hit ratio and detection per defence; ROC / precision-recall curves
and feature distributions of real vs fake profiles), made from an experiment's output folder.

Which cells are shown: when ``experiment.json`` still expands (see ``runner.plan``), only the rows
of its cells; rows left in the store by earlier versions of the file are counted, not shown.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from advrec.errors import AdvrecError, ConfigError, OutputError
from advrec.experiments.store import DB_NAME, ResultsStore
from advrec.outputs import OutputDir, check_new_file, read_marker, write_file

REPORT_NAME = "report.html"
CONFIG_NAME = "experiment.json"
ALPHA = 0.05
LINESTYLES = {"fgsm": "-", "random": "--", "pgd": "-."}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # one per attack variant
CLEAN_STYLE = (0, (1, 2))  # dotted
CLEAN = "none"
SHILLING = "shilling"  # the scenario of injection cells
SHILLING_LABEL = "shilling: "  # how their variants are named beside parameter attacks
NO_DEFENSE = "none"
PERFECT = "perfect"  # the oracle detector: left out of the curves (trivially perfect)
TARGET_METRIC = re.compile(r"target_hr@(\d+)(_before)?")
DETECTION_COLUMNS = (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"),
                     ("roc_auc", "ROC-AUC"))

Row = dict[str, Any]


# ---------------------------------------------------------------------------- public
def write_report(folder: str | os.PathLike, path: str | os.PathLike | None = None,
                 overwrite: bool = False) -> Path:
    """Write the HTML report of the experiment in ``folder`` (default ``<folder>/report.html``,
    refreshed on every call; the folder must be an experiment folder advrec wrote).

    ConfigError when the folder holds no results store or no finished cell. A ``path`` elsewhere
    is a file of its own: an existing one is replaced only with ``overwrite`` and only if advrec
    wrote it. Written to a temporary name and renamed, so a reader never sees half a report.
    """
    folder = Path(folder)
    if path is not None:
        check_new_file(path, overwrite)
    text = render(load_report_data(folder))
    if path is not None:
        return write_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite)
    marker = read_marker(folder)
    if marker is None or marker["kind"] != "experiment":
        raise OutputError(f"{folder} is not an experiment folder advrec wrote; write the report "
                          f"elsewhere with --out FILE")
    return OutputDir(folder, "experiment", marker.get("identity")).write_text(REPORT_NAME, text)


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
    def shilling(self) -> bool:
        return self.scenario == SHILLING

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
        labels = _unique(g.label for g in self.groups)
        return f"C{labels.index(label) % 10}"


def load_report_data(folder: Path) -> ReportData:
    """Read ``experiment.json`` and the results store of ``folder`` and group the rows."""
    with ResultsStore(folder, read_only=True) as store:
        rows = store.rows(per_user=True)
    config = _read_config(folder)
    planned = _plan_of(config)
    stale = 0
    if planned is not None:
        keys, labels = planned
        kept = [{**r, "model_label": labels[r["model_key"]]} for r in rows if r["key"] in keys]
        stale = len(rows) - len(kept)
        order = _unique(labels.values())
        rows = sorted(kept, key=lambda r: order.index(r["model_label"]))
    if not rows:
        extra = f" ({stale} row(s) from earlier versions of the experiment file)" if stale else ""
        raise ConfigError(f"{folder}: no finished cells in {DB_NAME}{extra}; run the experiment "
                          f"first")
    return ReportData(folder, config, rows, stale,
                      len(planned[0]) if planned is not None else None,
                      group_rows(rows), [m for m in _metric_names(rows)
                                         if not TARGET_METRIC.fullmatch(m)],
                      _test_name(config, rows))


def _read_config(folder: Path) -> dict[str, Any] | None:
    path = folder / CONFIG_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _plan_of(config: dict[str, Any] | None) -> tuple[set[str], dict[str, str]] | None:
    """The cell keys and model key -> label (in file order) of the current experiment file, or
    None when it is missing or no longer expands. Labels are not part of a key, so a row keeps
    the label it was written with; the report shows the file's current one."""
    if config is None:
        return None
    from advrec.experiments.config import parse_config
    from advrec.experiments.runner import plan

    try:
        the_plan = plan(parse_config(config, source=CONFIG_NAME))
    except AdvrecError:
        return None
    return {c.key for c in the_plan.cells}, {j.key: j.label for j in the_plan.jobs}


def _metric_names(rows: list[Row]) -> list[str]:
    names: list[str] = []
    for r in rows:
        names.extend(m for m in r["metrics"] if m not in names)
    return names


def _test_name(config: dict[str, Any] | None, rows: list[Row]) -> str:
    for source in [config or {}, *(r.get("config") or {} for r in rows)]:
        test = (source.get("evaluation") or {}).get("significance")
        if test:
            return str(test)
    return "ttest"


def attack_names(rows: list[Row]) -> dict[str, str]:
    """Row key -> the attack variant's name: the method plus the options (other than ε) that
    take more than one value among that method's cells; ``"none"`` for clean cells."""
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
        prefix = SHILLING_LABEL if r["scenario"] == SHILLING else ""
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


def group_rows(rows: list[Row]) -> list[Group]:
    """Rows grouped by (model label, attack variant, ε) over seeds: models in the order of the
    rows, clean first, then attack variants in order of appearance, ε ascending."""
    names = attack_names(rows)
    groups: dict[tuple, Group] = {}
    for r in rows:
        key = (r["model_label"], names[r["key"]], r["eps"])
        if key not in groups:
            groups[key] = Group(r["model_label"], names[r["key"]], r["attack"], r["eps"],
                                r["scenario"])
        groups[key].rows.append(r)
    labels = _unique(g.label for g in groups.values())
    attacks = _unique(g.attack for g in groups.values() if not g.clean)
    for g in groups.values():
        g.rows.sort(key=lambda r: r["seed"])

    def order(g: Group) -> tuple:  # shilling groups have no ε
        return (labels.index(g.label), -1 if g.clean else attacks.index(g.attack), g.eps or 0.0)

    return sorted(groups.values(), key=order)


def _unique(items: Iterable[str]) -> list[str]:
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


@dataclass
class Comparison:
    """A paired test of two conditions, per seed, for one metric."""

    per_seed: dict[int, float]  # seed -> p-value
    mean_diff: float  # mean over seeds of mean(a - b) over users

    @property
    def p_max(self) -> float:
        return max(self.per_seed.values())


def paired_over_users(a: Row, b: Row, metric: str, test: str) -> dict[str, float] | None:
    """:func:`paired_test` of one metric of two cells, over the users both evaluated (finite
    values only); None when it cannot be computed."""
    from advrec.evaluation.significance import paired_test

    pa, pb = a.get("per_user") or {}, b.get("per_user") or {}
    if metric not in pa or metric not in pb:
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


def attack_pairs(g: Group, by_model_condition: dict[tuple, Row]) -> list[tuple[Row, Row]]:
    """(attacked cell, clean cell of the same trained model) for each seed of ``g``."""
    return [(r, by_model_condition[(r["model_key"], CLEAN, None)]) for r in g.rows
            if (r["model_key"], CLEAN, None) in by_model_condition]


def init_pairs(g: Group, by_model_condition: dict[tuple, Row]) -> list[tuple[Row, Row]]:
    """(cell of a model trained from another, the parent's cell under the same condition)."""
    pairs = []
    for r in g.rows:
        parent = (r.get("config") or {}).get("model", {}).get("init")
        other = by_model_condition.get((parent, *g.condition)) if parent else None
        if other is not None:
            pairs.append((r, other))
    return pairs


def index_rows(groups: list[Group]) -> dict[tuple, Row]:
    """(model key, attack variant, ε) -> row."""
    return {(r["model_key"], g.attack, g.eps): r for g in groups for r in g.rows}


# ---------------------------------------------------------------------------- formatting
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


# ---------------------------------------------------------------------------- sections
def render(data: ReportData) -> str:
    """The whole HTML document."""
    name = (data.config or {}).get("name") or data.rows[0]["experiment"]
    shilling = shilling_html(data)
    body = "".join([
        header_html(data, name),
        nav_html(bool(shilling)),
        tag("main", config_html(data) + results_html(data) + significance_html(data)
            + shilling + plots_html(data)),
        tag("footer", tag("p", f"Generated by advrec on {esc(_now())} from "
                               f"{tag('code', esc(data.folder.resolve()))}.")),
    ])
    head = ('<meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            'style-src \'unsafe-inline\'; img-src data:">'
            f"<title>{esc(name)} — advrec report</title><style>{CSS}</style>")
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>{head}</head>\n<body>{body}</body>\n</html>\n'


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def header_html(data: ReportData, name: str) -> str:
    """Title, description and the run's facts: when, which versions, how many cells."""
    desc = (data.config or {}).get("description") or ""
    created = sorted(r["created"] for r in data.rows if r.get("created") is not None)
    when = (f"{_stamp(created[0])} – {_stamp(created[-1])}" if created else "unknown")
    seeds = sorted({r["seed"] for r in data.rows})
    models = _unique(r["model_label"] for r in data.rows)
    cells = f"{len(data.rows)}" + (f" of {data.planned}" if data.planned is not None else "")
    facts = [("Cells finished", cells), ("Models", ", ".join(models)),
             ("Seeds", ", ".join(map(str, seeds))), ("Cells written", when),
             ("Versions", versions_text(data.rows)), ("Output folder", str(data.folder))]
    if data.stale:
        facts.append(("Not shown", f"{data.stale} row(s) of cells the current experiment file "
                                   f"no longer has"))
    dl = "".join(tag("dt", esc(k)) + tag("dd", esc(v)) for k, v in facts)
    parts = tag("h1", esc(name))
    if desc:
        parts += tag("p", esc(desc), class_="description")
    return tag("header", parts + tag("dl", dl, class_="meta"), id="summary")


def _stamp(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, datetime) else str(value)


def versions_text(rows: list[Row]) -> str:
    """The library versions the cells were computed with (each distinct set once)."""
    seen: dict[str, int] = {}
    for r in rows:
        text = ", ".join(f"{k} {v}" for k, v in (r.get("versions") or {}).items()) or "unknown"
        seen[text] = seen.get(text, 0) + 1
    if len(seen) == 1:
        return next(iter(seen))
    return "; ".join(f"{t} ({n} cells)" for t, n in seen.items())


def nav_html(shilling: bool = False) -> str:
    """Links to the sections (the shilling one only when the report has it)."""
    links = [("config", "Configuration"), ("results", "Results"),
             ("significance", "Significance"),
             *([("shilling", "Shilling attacks and defences")] if shilling else []),
             ("plots", "Plots")]
    return tag("nav", " · ".join(tag("a", esc(t), href=f"#{i}") for i, t in links))


def config_html(data: ReportData) -> str:
    if data.config is None:
        body = tag("p", f"No readable {esc(CONFIG_NAME)} in the output folder.")
    else:
        text = json.dumps(data.config, indent=2, ensure_ascii=False)
        body = tag("details", tag("summary", esc(CONFIG_NAME)) + tag("pre", tag("code", esc(text))))
    return tag("section", tag("h2", "Configuration") + body, id="config")


def results_html(data: ReportData) -> str:
    """Model × attack × ε: each metric's mean ± std over seeds and the change vs clean."""
    head = ["Model", "Attack", "ε", "Seeds", *map(esc, data.metrics)]
    rows = [results_row(data, g) for g in data.groups]
    intro = tag("p", "Mean ± sample standard deviation over seeds (no ± with one seed). For an "
                     "attacked cell, the percentage is the relative change of the mean vs the "
                     "same model's clean cell. Shilling cells (no ε) show the "
                     "model trained again on the poisoned data, less the profiles the defence "
                     "removed.")
    return tag("section", tag("h2", "Results") + intro + table(head, rows, class_="results",
                                                              id="results-table"), id="results")


def results_row(data: ReportData, g: Group) -> list[str]:
    clean = None if g.clean else clean_group(data.groups, g.label)
    cells = [esc(g.label), esc(g.attack), esc(fmt_eps(g.eps)), esc(len(g.rows))]
    return cells + [metric_cell(g, clean, m) for m in data.metrics]


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


def significance_html(data: ReportData) -> str:
    """Paired tests over users: attacked vs clean, and models trained from another vs parent."""
    index = index_rows(data.groups)
    attacked = [g for g in data.groups if not g.clean]
    derived = [g for g in data.groups if init_pairs(g, index)]
    test = "Paired t-test" if data.test == "ttest" else "Paired Wilcoxon signed-rank test"
    intro = tag("p", f"{esc(test)} ({tag('code', esc(data.test))}, from "
                     f"{tag('code', 'evaluation.significance')}) over the users both cells "
                     f"evaluated, run separately for each seed. Each cell shows the largest "
                     f"p-value over the seeds (the difference is significant at α = {ALPHA} in "
                     f"every seed when it is below α; shown in bold), the mean difference Δ "
                     f"(first minus second, averaged over seeds) and, with several seeds, each "
                     f"seed's p-value.")
    parts = tag("h2", "Significance") + intro
    parts += tag("h3", "Attacked vs clean (same trained model)")
    parts += sig_table(data, attacked, lambda g: attack_pairs(g, index), "sig-attack",
                       "No attacked cells.")
    parts += tag("h3", "Trained from another model vs that model (defended vs baseline)")
    parts += sig_table(data, derived, lambda g: init_pairs(g, index), "sig-init",
                       "No model is trained from another (models[].init).", parent=True)
    return tag("section", parts, id="significance")


def sig_table(data: ReportData, groups: list[Group], pairs_of, id_: str, empty: str,
              parent: bool = False) -> str:
    if not groups:
        return tag("p", esc(empty), class_="empty", id=id_)
    head = ["Model", *(["vs"] if parent else []), "Attack", "ε", *map(esc, data.metrics)]
    rows = []
    for g in groups:
        pairs = pairs_of(g)
        first = [esc(g.label)]
        if parent:
            first.append(esc(pairs[0][1]["model_label"]) if pairs else "—")
        first += [esc(g.attack), esc(fmt_eps(g.eps))]
        rows.append(first + [p_cell(compare(pairs, m, data.test)) for m in data.metrics])
    return table(head, rows, class_="significance", id=id_)


def p_cell(c: Comparison | None) -> str:
    if c is None:
        return tag("span", "n/a", class_="p na")
    p = c.p_max
    text = tag("span", esc(fmt_p(p)), class_="p sig" if p < ALPHA else "p",
               data_p=repr(p))
    text += " " + tag("span", f"Δ {esc(f'{c.mean_diff:+.4f}'.replace('-', '−'))}", class_="diff")
    if len(c.per_seed) > 1:
        seeds = ", ".join(f"{s}: {fmt_p(v)}" for s, v in c.per_seed.items())
        text += tag("span", f"seeds {esc(seeds)}", class_="per-seed")
    return text


# ---------------------------------------------------------------------------- shilling
@dataclass(frozen=True)
class Variant:
    """A shilling attack variant, whatever the defence: the attack (with the options other than
    size and filler that differ between its cells), its size and its filler."""

    name: str  # e.g. "average" or "average (intent=nuke)"
    size: float
    filler: float

    @property
    def title(self) -> str:
        return f"{self.name} · size {self.size:g} · filler {self.filler:g}"


@dataclass
class ShillingGroup:
    """The cells of one model under one shilling attack variant and one defence."""

    group: Group
    variant: Variant
    defense: str


def shilling_groups(data: ReportData) -> list[ShillingGroup]:
    """The shilling groups ordered by model, attack variant and defence (no defence first, then
    in order of appearance)."""
    rows = [r for g in data.groups if g.shilling for r in g.rows]
    if not rows:
        return []
    drop = ("defense", "size", "filler")
    names = attack_names([{**r, "attack_config": {k: v for k, v in r["attack_config"].items()
                                                  if k not in drop}} for r in rows])
    found = []
    for g in (g for g in data.groups if g.shilling):
        cfg = g.rows[0]["attack_config"]
        variant = Variant(names[g.rows[0]["key"]].removeprefix(SHILLING_LABEL), float(cfg["size"]),
                          float(cfg["filler"]))
        found.append(ShillingGroup(g, variant, g.rows[0].get("defense") or NO_DEFENSE))
    labels = _unique(s.group.label for s in found)
    variants = _unique(s.variant for s in found)
    defenses = [NO_DEFENSE, *_unique(s.defense for s in found)]
    return sorted(found, key=lambda s: (labels.index(s.group.label), variants.index(s.variant),
                                        defenses.index(s.defense)))


def target_ks(groups: list[ShillingGroup]) -> list[int]:
    """The cut-offs k of the target hit ratios the shilling cells recorded, ascending."""
    ks = {int(m.group(1)) for s in groups for r in s.group.rows for name in r["metrics"]
          if (m := TARGET_METRIC.fullmatch(name))}
    return sorted(ks)


def detection_stats(g: Group, key: str) -> float:
    """Mean over seeds of one detection figure (NaN without a detection payload)."""
    return mean_std([(r.get("detection") or {}).get(key) for r in g.rows])[0]


def fmt_count(x: float) -> str:
    """A (mean) count: ``3``, ``1.5``."""
    return "—" if not math.isfinite(x) else f"{round(x, 1):g}"


def shilling_html(data: ReportData) -> str:
    """The shilling section (empty string without shilling cells): the table, then the ROC and
    precision-recall curves of the detectors and the feature distributions, per attack variant."""
    groups = shilling_groups(data)
    if not groups:
        return ""
    intro = tag("p", "Each victim is trained again on the training data plus the fake profiles "
                     "(defence none), and on that data less the profiles each detector flags "
                     "(perfect removes exactly the fake ones). Test metrics: mean ± std over "
                     "seeds on the real users, and the relative change vs the same model's "
                     "clean cell. Target HR: the targets' hit ratio over the real users who had "
                     "not rated them, of the clean model → of the model trained on the poisoned "
                     "data (means over seeds). Detection: precision, recall, F1 and ROC-AUC of "
                     "the flagged profiles and the real users removed (means over seeds).")
    parts = tag("h2", "Shilling attacks and defences") + intro + shilling_table(data, groups)
    curves = detection_curves(groups)
    figures = [curve_figure(curves, "roc"), curve_figure(curves, "pr")]
    figures = [f for f in figures if f]
    parts += tag("h3", "Detection curves")
    parts += "".join(figures) if figures else tag("p", "No detector curves recorded.",
                                                  class_="empty")
    features = [feature_figure(v, payload, i)
                for i, (v, payload) in enumerate(feature_payloads(groups).items(), 1)]
    features = [f for f in features if f]
    parts += tag("h3", "Features of real and fake profiles")
    parts += "".join(features) if features else tag("p", "No feature histograms recorded.",
                                                    class_="empty")
    return tag("section", tag("div", parts), id="shilling")


def shilling_table(data: ReportData, groups: list[ShillingGroup]) -> str:
    """Model × attack variant × defence: test metrics, target hit ratios and detection."""
    ks = target_ks(groups)
    detected = any(r.get("detection") for s in groups for r in s.group.rows)
    head = ["Model", "Attack", "Size", "Filler", "Defence", "Seeds", *map(esc, data.metrics),
            *(f"Target HR@{k} before → after" for k in ks)]
    if detected:
        head += [*(name for _, name in DETECTION_COLUMNS), "Removed real users"]
    rows = []
    for s in groups:
        g, clean = s.group, clean_group(data.groups, s.group.label)
        row = [esc(g.label), esc(s.variant.name), esc(f"{s.variant.size:g}"),
               esc(f"{s.variant.filler:g}"), esc(s.defense), esc(len(g.rows)),
               *(metric_cell(g, clean, m) for m in data.metrics)]
        for k in ks:
            before = group_stats(g, f"target_hr@{k}_before")[0]
            row.append(esc(f"{fmt_num(before)} → {fmt_num(group_stats(g, f'target_hr@{k}')[0])}"))
        if detected:
            row += [esc(fmt_num(detection_stats(g, key), 3)) for key, _ in DETECTION_COLUMNS]
            row.append(esc(fmt_count(detection_stats(g, "removed_real"))))
        rows.append(row)
    return table(head, rows, class_="results shilling", id="shilling-table")


def _by_seed(groups: list[ShillingGroup]) -> dict[Variant, dict[str, dict[int, dict]]]:
    """Variant -> detector -> seed -> detection payload. The payload depends on the data, the
    attack and the detector, not on the victim, so the first model's is kept."""
    found: dict[Variant, dict[str, dict[int, dict]]] = {}
    for s in groups:
        for r in s.group.rows:
            if r.get("detection"):
                per = found.setdefault(s.variant, {}).setdefault(s.defense, {})
                per.setdefault(r["seed"], r["detection"])
    return found


def detection_curves(groups: list[ShillingGroup]) -> dict[Variant, dict[str, tuple[dict, dict]]]:
    """Variant -> detector (not ``perfect``) -> (the lowest seed's payload, {"roc_auc": mean,
    "pr_auc": mean} over seeds)."""
    curves: dict[Variant, dict[str, tuple[dict, dict]]] = {}
    for variant, detectors in _by_seed(groups).items():
        for detector, per_seed in detectors.items():
            if detector == PERFECT:
                continue
            means = {k: mean_std([p.get(k) for p in per_seed.values()])[0]
                     for k in ("roc_auc", "pr_auc")}
            curves.setdefault(variant, {})[detector] = (per_seed[min(per_seed)], means)
    return curves


CURVES = {  # kind -> (payload key, x, y, AUC key, x label, y label, title)
    "roc": ("roc_curve", "fpr", "tpr", "roc_auc", "false positive rate", "true positive rate",
            "ROC curves"),
    "pr": ("pr_curve", "recall", "precision", "pr_auc", "recall", "precision",
           "Precision-recall curves"),
}


def curve_figure(curves: dict[Variant, dict[str, tuple[dict, dict]]], kind: str) -> str:
    """ROC (``kind="roc"``) or precision-recall curves: one panel per attack variant, one line
    per detector (the lowest seed's curve; the legend shows the mean AUC over seeds)."""
    key, xk, yk, auc, xlabel, ylabel, title = CURVES[kind]
    panels = {v: {d: (p[key], m[auc]) for d, (p, m) in per.items()
                  if isinstance(p.get(key), dict) and p[key].get(xk) and p[key].get(yk)}
              for v, per in curves.items()}
    panels = {v: lines for v, lines in panels.items() if lines}
    if not panels:
        return ""
    detectors = _unique(d for lines in panels.values() for d in lines)
    fig, axes = panel_grid(len(panels), 3, (4.2, 3.7))
    for ax, (variant, lines) in zip(axes, panels.items(), strict=False):
        for detector, (curve, mean_auc) in lines.items():
            ax.plot(curve[xk], curve[yk], color=f"C{detectors.index(detector) % 10}",
                    linewidth=1.4, drawstyle="steps-post" if kind == "pr" else "default",
                    label=f"{detector} (AUC {fmt_num(mean_auc, 3)})")
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="grey", linestyle=CLEAN_STYLE, linewidth=1)
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel=xlabel, ylabel=ylabel)
        ax.set_title(variant.title, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if kind == "roc" else "lower left")
    fig.suptitle(title)
    caption = (f"{title} of the detectors, one panel per shilling attack variant (lowest seed's "
               f"curve; legend: mean {'ROC' if kind == 'roc' else 'PR'}-AUC over seeds)")
    return figure_html(fig, caption, f"shill-{kind}", wide=True)


def panel_grid(n: int, columns: int, size: tuple[float, float]):
    """A figure with ``n`` panels, ``columns`` to a row at most; (figure, the n axes)."""
    cols = min(n, columns)
    rows = math.ceil(n / cols)
    fig = new_figure((size[0] * cols, size[1] * rows + 0.4))
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


def feature_payloads(groups: list[ShillingGroup]) -> dict[Variant, tuple[str, int, dict]]:
    """Variant -> (detector, seed, feature histograms) of the lowest seed, first detector that
    recorded them."""
    found: dict[Variant, tuple[str, int, dict]] = {}
    for variant, detectors in _by_seed(groups).items():
        candidates = [(seed, i, detector, payload["features"])
                      for i, (detector, per_seed) in enumerate(detectors.items())
                      for seed, payload in per_seed.items()
                      if isinstance(payload.get("features"), dict) and payload["features"]]
        if candidates:
            seed, _, detector, features = min(candidates, key=lambda c: (c[0], c[1]))
            found[variant] = (detector, seed, features)
    return found


def feature_figure(variant: Variant, payload: tuple[str, int, dict], index: int) -> str:
    """Histograms (shares per bin) of real vs fake profiles, one panel per feature."""
    detector, seed, features = payload
    shown = {name: h for name, h in features.items()
             if len(h.get("edges") or []) == len(h.get("real") or []) + 1
             == len(h.get("fake") or []) + 1 > 1}
    if not shown:
        return ""
    fig, axes = panel_grid(len(shown), 5, (2.6, 2.2))
    for ax, (name, h) in zip(axes, shown.items(), strict=False):
        ax.stairs(h["real"], h["edges"], fill=True, color="C0", alpha=0.35, label="real")
        ax.stairs(h["fake"], h["edges"], color="C3", linewidth=1.3, label="fake")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, frameon=False)
    fig.suptitle(f"Real vs fake profiles: {variant.title}", fontsize=10)
    caption = (f"Feature distributions of real (filled) and fake (red) profiles under "
               f"{variant.title}: share of each population per bin (from detector {detector}, "
               f"seed {seed})")
    return figure_html(fig, caption, f"shill-features-{index}", wide=True)


# ---------------------------------------------------------------------------- plots
def plots_html(data: ReportData) -> str:
    """Metric vs ε per metric, then training loss (and validation metric where recorded)."""
    robust = [robustness_figure(data, m) for m in data.metrics]
    robust = [f for f in robust if f]
    parts = tag("h2", "Plots") + tag("h3", "Metric vs ε")
    parts += "".join(robust) if robust else tag("p", "No parameter-attack cells (with an ε) to "
                                                     "plot.", class_="empty")
    parts += tag("h3", "Training curves")
    curves = [training_figure(data, "loss"), training_figure(data, "validation")]
    curves = [f for f in curves if f]
    parts += "".join(curves) if curves else tag("p", "No training history recorded.",
                                                class_="empty")
    return tag("section", tag("div", parts), id="plots")


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


def robustness_figure(data: ReportData, metric: str) -> str:
    """``metric`` vs ε (log x), one line per model × attack variant (fgsm solid, random dashed,
    pgd dotted), error bars = std over seeds, each model's clean value as a horizontal line.
    Parameter attacks only: shilling cells have no ε (they have their own section)."""
    attacked = [g for g in data.groups
                if not g.clean and g.eps is not None and metric in _metrics_of(g)]
    if not attacked:
        return ""
    labels = _unique(g.label for g in attacked)
    variants = _unique(g.attack for g in attacked)
    fig = new_figure((9.0, 4.6))
    ax = fig.add_subplot()
    for label in labels:
        for attack in _unique(g.attack for g in attacked if g.label == label):
            line = sorted((g for g in attacked if g.label == label and g.attack == attack),
                          key=lambda g: g.eps)
            stats = [group_stats(g, metric) for g in line]
            ax.errorbar([g.eps for g in line], [s[0] for s in stats],
                        yerr=[s[1] or 0.0 for s in stats], color=data.colour(label),
                        linestyle=LINESTYLES.get(line[0].method, ":"),
                        marker=MARKERS[variants.index(attack) % len(MARKERS)], markersize=4,
                        capsize=3,
                        label=f"{label} · {attack}")
        clean = clean_group(data.groups, label)
        if clean is not None:
            ax.axhline(group_stats(clean, metric)[0], color=data.colour(label),
                       linestyle=CLEAN_STYLE, linewidth=1, alpha=0.8, label=f"{label} · clean")
    log_eps_axis(ax, sorted({g.eps for g in attacked}))
    ax.set_xlabel("ε (perturbation norm)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} under attack")
    ax.grid(True, alpha=0.3)
    legend(ax)
    caption = f"{metric} vs ε; error bars: std over seeds; dotted horizontal lines: clean"
    return figure_html(fig, caption, f"plot-{_slug(metric)}", wide=True)


def log_eps_axis(ax, eps: list[float]) -> None:
    """A log x axis ticked at the ε values of the experiment, labelled plainly (0.5, not 5e-1)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(eps))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    if len(eps) == 1:
        ax.set_xlim(eps[0] / 2, eps[0] * 2)


def legend(ax) -> None:
    """The legend right of the axes, entries grouped by model (names are ``model · what``)."""
    handles, names = ax.get_legend_handles_labels()
    models = _unique(n.split(" · ")[0] for n in names)
    order = sorted(range(len(names)), key=lambda i: models.index(names[i].split(" · ")[0]))
    ax.legend([handles[i] for i in order], [names[i] for i in order], fontsize=8,
              loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)


def _metrics_of(g: Group) -> set[str]:
    return {m for r in g.rows for m in r["metrics"]}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def training_figure(data: ReportData, key: str) -> str:
    """Training loss (``key="loss"``) or validation metric per epoch, one line per model and
    seed (one colour per model)."""
    curves = [(g.label, r["seed"], history_points(r.get("history") or [], key))
              for g in data.groups if g.clean for r in g.rows]
    curves = [c for c in curves if c[2]]
    if not curves:
        return ""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure()
    ax = fig.add_subplot()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    seen: set[str] = set()
    for lab, _seed, points in curves:
        ax.plot(*zip(*points, strict=True), color=data.colour(lab), linewidth=1.2,
                alpha=0.85, marker="o" if len(points) < 3 else None, markersize=3,
                label=None if lab in seen else lab)
        seen.add(lab)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss" if key == "loss" else f"validation {_validation_metric(data)}")
    ax.set_title("Training loss" if key == "loss" else "Validation metric")
    ax.grid(True, alpha=0.3)
    legend(ax)
    what = "Training loss" if key == "loss" else "Validation metric (early stopping)"
    caption = f"{what} per epoch; one line per model and seed"
    return figure_html(fig, caption, f"plot-training-{key}")


def history_points(history: list, key: str) -> list[tuple[int, float]]:
    """(epoch, value) of ``key`` in a training history: a list of per-epoch dicts, or of plain
    numbers (models that record only their training objective per epoch, e.g. ``mf``)."""
    points = []
    for i, h in enumerate(history, 1):
        if isinstance(h, dict):
            if h.get(key) is not None:
                points.append((h.get("epoch", i), h[key]))
        elif key == "loss" and isinstance(h, (int, float)):
            points.append((i, float(h)))
    return points


def _validation_metric(data: ReportData) -> str:
    for m in (data.config or {}).get("models", []):
        if m.get("early_stopping"):
            return str(m["early_stopping"].get("metric", ""))
    return "metric"


CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --accent: #2a5db0; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1400px; padding: 1.5rem 2rem 3rem; background: #fff; }
h1 { margin: 0 0 .3rem; font-size: 1.8rem; }
h2 { margin-top: 2.2rem; border-bottom: 2px solid var(--line); padding-bottom: .2rem; }
h3 { margin-top: 1.6rem; color: var(--muted); }
.description { font-size: 1.05rem; color: var(--muted); margin: 0 0 1rem; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: 0; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
nav { margin: 1rem 0; padding: .5rem 0; border-top: 1px solid var(--line);
      border-bottom: 1px solid var(--line); }
nav a { color: var(--accent); text-decoration: none; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid var(--line); padding: .3rem .55rem; text-align: left;
         vertical-align: top; }
thead th { background: #f1f3f7; position: sticky; top: 0; }
tbody tr:nth-child(even) { background: #fafbfc; }
td { font-variant-numeric: tabular-nums; }
.change { font-size: .8rem; margin-left: .25rem; color: var(--muted); white-space: nowrap; }
table.shilling td { white-space: nowrap; }
.change.down { color: #b3261e; } .change.up { color: #1e7b34; }
.p { font-weight: 400; } .p.sig { font-weight: 700; }
.diff, .per-seed { display: block; font-size: .75rem; color: var(--muted); }
details pre { background: #f6f8fa; padding: .8rem; overflow: auto; max-height: 40rem;
              border: 1px solid var(--line); }
#plots > div { display: block; }
figure.plot { display: inline-block; vertical-align: top; margin: .5rem 1rem 1rem 0;
              width: calc(50% - 1.2rem); min-width: 420px; }
figure.plot.wide { display: block; width: auto; max-width: 1100px; }
figure.plot svg { width: 100%; height: auto; }
td:nth-child(2) { white-space: nowrap; }
figcaption { font-size: .8rem; color: var(--muted); }
.empty { color: var(--muted); font-style: italic; }
footer { margin-top: 3rem; font-size: .8rem; color: var(--muted); }
"""
