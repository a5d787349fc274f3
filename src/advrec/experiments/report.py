"""The experiment report: one self-contained HTML file (no network needed to open it) made
from an experiment's output folder: the configuration, a results table (mean ± std over seeds),
paired significance tests over users, then the sections each scenario contributes for its cells
(``Scenario.report_sections``: training curves, metric vs ε, shilling attacks and defences),
plots inline as SVG.

Which cells are shown: when ``experiment.json`` still expands (see ``runner.plan``), only the rows
of its cells; rows left in the store by earlier versions of the file are counted, not shown.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from advrec.errors import AdvrecError, ConfigError, OutputError
from advrec.experiments.reporting import (
    CLEAN,
    TARGET_METRIC,
    Comparison,
    Group,
    ReportData,
    Row,
    Section,
    clean_group,
    compare,
    esc,
    fmt_eps,
    fmt_p,
    group_rows,
    metric_cell,
    table,
    tag,
    unique,
)
from advrec.experiments.scenarios import SCENARIOS
from advrec.experiments.store import DB_NAME, ResultsStore
from advrec.outputs import OutputDir, check_new_file, read_marker, write_file

REPORT_NAME = "report.html"
CONFIG_NAME = "experiment.json"
ALPHA = 0.05


PREFIXES = {s.name: s.variant_prefix for s in SCENARIOS.values()}
"""How each scenario's attack variants are named beside the others' (e.g. ``shilling: average``)."""


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
        order = unique(labels.values())
        rows = sorted(kept, key=lambda r: order.index(r["model_label"]))
    if not rows:
        extra = f" ({stale} row(s) from earlier versions of the experiment file)" if stale else ""
        raise ConfigError(f"{folder}: no finished cells in {DB_NAME}{extra}; run the experiment "
                          f"first")
    return ReportData(folder, config, rows, stale,
                      len(planned[0]) if planned is not None else None,
                      group_rows(rows, PREFIXES), [m for m in _metric_names(rows)
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


# ---------------------------------------------------------------------------- significance
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


# ---------------------------------------------------------------------------- sections
def sections(data: ReportData) -> list[Section]:
    """The report's sections in order: configuration, results, significance, then what each
    scenario with cells in the report contributes (in the order of ``SCENARIOS``)."""
    found = [Section("config", "Configuration", config_html(data)),
             Section("results", "Results", results_html(data)),
             Section("significance", "Significance", significance_html(data))]
    for scenario in SCENARIOS.values():
        groups = [g for g in data.groups if g.scenario == scenario.name]
        if groups:
            found += scenario.report_sections(data, groups)
    return found


def render(data: ReportData) -> str:
    """The whole HTML document."""
    name = (data.config or {}).get("name") or data.rows[0]["experiment"]
    parts = sections(data)
    body = "".join([
        header_html(data, name),
        nav_html(parts),
        tag("main", "".join(s.html for s in parts)),
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
    models = unique(r["model_label"] for r in data.rows)
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


def nav_html(parts: list[Section]) -> str:
    """Links to the sections."""
    return tag("nav", " · ".join(tag("a", esc(s.title), href=f"#{s.id}") for s in parts))


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
section > div { display: block; }
figure.plot { display: inline-block; vertical-align: top; margin: .5rem 1rem 1rem 0;
              width: calc(50% - 1.2rem); min-width: 420px; }
figure.plot.wide { display: block; width: auto; max-width: 1100px; }
figure.plot svg { width: 100%; height: auto; }
td:nth-child(2) { white-space: nowrap; }
figcaption { font-size: .8rem; color: var(--muted); }
.empty { color: var(--muted); font-style: italic; }
footer { margin-top: 3rem; font-size: .8rem; color: var(--muted); }
"""
