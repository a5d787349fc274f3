"""The report's plots of models and parameter attacks: training curves (the clean cells'
histories) and each metric against ε (parameter-attack cells), as :class:`Section` objects the
``clean`` and ``perturbation`` scenarios contribute."""

from __future__ import annotations

import re

from advrec.experiments.reporting import (
    CLEAN_STYLE,
    Group,
    ReportData,
    Section,
    clean_group,
    figure_html,
    group_stats,
    legend,
    new_figure,
    tag,
    unique,
)

LINESTYLES = {"fgsm": "-", "random": "--", "pgd": "-."}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # one per attack variant


def robustness_section(data: ReportData, groups: list[Group]) -> Section:
    """Each metric vs ε over the parameter-attack groups."""
    figures = [robustness_figure(data, groups, m) for m in data.metrics]
    figures = [f for f in figures if f]
    body = "".join(figures) if figures else tag("p", "No parameter-attack cells (with an ε) to "
                                                     "plot.", class_="empty")
    return Section("robustness", "Metric vs ε",
                   tag("section", tag("div", tag("h2", "Metric vs ε") + body), id="robustness"))


def training_section(data: ReportData, groups: list[Group]) -> Section:
    """Training loss and validation metric per epoch of the clean groups' models."""
    curves = [training_figure(data, groups, "loss"), training_figure(data, groups, "validation")]
    curves = [f for f in curves if f]
    body = "".join(curves) if curves else tag("p", "No training history recorded.",
                                              class_="empty")
    return Section("training", "Training curves",
                   tag("section", tag("div", tag("h2", "Training curves") + body), id="training"))


def robustness_figure(data: ReportData, groups: list[Group], metric: str) -> str:
    """``metric`` vs ε (log x), one line per model × attack variant (fgsm solid, random dashed,
    pgd dotted), error bars = std over seeds, each model's clean value as a horizontal line.
    Parameter attacks only: shilling cells have no ε (they have their own section)."""
    attacked = [g for g in groups if g.eps is not None and metric in _metrics_of(g)]
    if not attacked:
        return ""
    labels = unique(g.label for g in attacked)
    variants = unique(g.attack for g in attacked)
    fig = new_figure((9.0, 4.6))
    ax = fig.add_subplot()
    for label in labels:
        for attack in unique(g.attack for g in attacked if g.label == label):
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


def _metrics_of(g: Group) -> set[str]:
    return {m for r in g.rows for m in r["metrics"]}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def training_figure(data: ReportData, groups: list[Group], key: str) -> str:
    """Training loss (``key="loss"``) or validation metric per epoch, one line per model and
    seed (one colour per model)."""
    curves = [(g.label, r["seed"], history_points(r.get("history") or [], key))
              for g in groups for r in g.rows]
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
