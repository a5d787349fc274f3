"""The report's section on shilling cells (contributed by the ``shilling`` scenario): accuracy,
target hit ratio and detection per model × attack variant × defence, the detectors' ROC /
precision-recall curves and the feature distributions of real vs fake profiles."""

from __future__ import annotations

import math
from dataclasses import dataclass

from advrec.experiments.reporting import (
    CLEAN_STYLE,
    TARGET_METRIC,
    Group,
    ReportData,
    Section,
    attack_names,
    clean_group,
    compare,
    esc,
    figure_html,
    fmt_num,
    fmt_p,
    group_stats,
    mean_std,
    metric_cell,
    new_figure,
    table,
    tag,
    unique,
)
from advrec.vocabulary import POISONING_ATTACKS, SHILLING_ATTACKS

NO_DEFENSE = "none"
PERFECT = "perfect"  # the oracle detector: left out of the curves (trivially perfect)
DETECTION_COLUMNS = (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"),
                     ("roc_auc", "ROC-AUC"))


@dataclass(frozen=True)
class Variant:
    """A shilling attack variant, whatever the defence: the attack (with the options other than
    size and filler that differ between its cells), its size and its filler."""

    name: str  # e.g. "average" or "average (intent=nuke)"
    size: float
    filler: float | None  # None: an optimised attack's average-length profiles

    @property
    def filler_text(self) -> str:
        return "avg. profile" if self.filler is None else f"{self.filler:g}"

    @property
    def title(self) -> str:
        return f"{self.name} · size {self.size:g} · filler {self.filler_text}"


@dataclass
class ShillingGroup:
    """The cells of one model under one shilling attack variant and one defence."""

    group: Group
    variant: Variant
    defense: str


def shilling_groups(groups: list[Group]) -> list[ShillingGroup]:
    """The shilling groups ordered by model, attack variant and defence (no defence first, then
    in order of appearance)."""
    rows = [r for g in groups for r in g.rows]
    if not rows:
        return []
    drop = ("defense", "size", "filler", "profiles")
    names = attack_names([{**r, "attack_config": {k: v for k, v in r["attack_config"].items()
                                                  if k not in drop}} for r in rows])
    found = []
    for g in groups:
        cfg = g.rows[0]["attack_config"]
        filler = None if cfg.get("filler") is None else float(cfg["filler"])
        variant = Variant(names[g.rows[0]["key"]], float(cfg["size"]), filler)
        found.append(ShillingGroup(g, variant, g.rows[0].get("defense") or NO_DEFENSE))
    labels = unique(s.group.label for s in found)
    variants = unique(s.variant for s in found)
    defenses = [NO_DEFENSE, *unique(s.defense for s in found)]
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


def shilling_section(data: ReportData, cells: list[Group]) -> Section:
    """The shilling section: the table, then the ROC and precision-recall curves of the
    detectors and the feature distributions, per attack variant."""
    groups = shilling_groups(cells)
    intro = tag("p", "Each victim is trained again on the training data plus the fake profiles "
                     "(defence none), and on that data less the profiles each detector flags "
                     "(perfect removes exactly the fake ones). Test metrics: mean ± std over "
                     "seeds on the real users, and the relative change vs the same model's "
                     "clean cell. Target HR: the targets' hit ratio over the real users who had "
                     "not rated them, of the clean model → of the model trained on the poisoned "
                     "data (means over seeds). Detection: precision, recall, F1 and ROC-AUC of "
                     "the flagged profiles and the real users removed (means over seeds).")
    parts = tag("h2", "Shilling attacks and defences") + intro + shilling_table(data, groups)
    transfer = transfer_tables(data, groups, target_ks(groups))
    if transfer:
        parts += tag("h3", "Optimised attacks against the best hand-crafted one") + transfer
    budget = budget_figure(groups, target_ks(groups))
    if budget:
        parts += tag("h3", "Target hit ratio against the attack budget") + budget
    certified = certificate_figure(groups)
    if certified:
        parts += tag("h3", "Certified robustness (PORE)") + certified
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
    return Section("shilling", "Shilling attacks and defences",
                   tag("section", tag("div", parts), id="shilling"))


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
               esc(s.variant.filler_text), esc(s.defense), esc(len(g.rows)),
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
    detectors = unique(d for lines in panels.values() for d in lines)
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


def transfer_tables(data: ReportData, groups: list[ShillingGroup], ks: list[int]) -> str:
    """Per k, attack × victim tables of the targets' HR@k after each undefended attack, one row
    per (size, attack): how far an attack optimised on one surrogate transfers to each victim.
    An optimised attack's cell adds the paired test, over users, of its per-user target hit
    ratio against the best hand-crafted attack's (highest mean HR@k on that victim at that
    size): bold when higher with p < 0.05 on every seed. Empty unless both kinds ran."""
    undefended = [s for s in groups if s.defense == NO_DEFENSE]
    kinds = {s.group.method for s in undefended}
    if not ks or not kinds & set(POISONING_ATTACKS) or not kinds & set(SHILLING_ATTACKS):
        return ""
    victims = unique(s.group.label for s in undefended)
    cells = {(s.variant.size, _attack_label(s.variant), s.group.label): s for s in undefended}
    rows_of = unique((size, attack) for size, attack, _ in cells)
    rows_of.sort(key=lambda r: r[0])
    intro = tag("p", "Target HR@k after each attack (no defence; means over seeds), one column "
                     "per victim. For an optimised attack, in brackets: the best hand-crafted "
                     "attack on that victim at that size (underlined) and the p-value of the "
                     f"paired {'t-test' if data.test == 'ttest' else 'Wilcoxon test'} over "
                     "users of the two (the largest over seeds); bold: higher with p < 0.05.")
    out = intro
    for k in ks:
        metric = f"target_hr@{k}"
        best = {}
        for (size, _, victim), s in cells.items():
            if s.group.method in SHILLING_ATTACKS:
                hr = group_stats(s.group, metric)[0]
                if math.isfinite(hr) and (best.get((size, victim)) is None or
                                          hr > group_stats(best[(size, victim)].group,
                                                           metric)[0]):
                    best[(size, victim)] = s
        body = []
        for size, attack in rows_of:
            row = [esc(f"{size:g}"), esc(attack)]
            for victim in victims:
                s = cells.get((size, attack, victim))
                row.append(_transfer_cell(s, best.get((size, victim)), metric, data.test))
            body.append(row)
        out += table(["Size", "Attack", *(f"{esc(v)}: HR@{k}" for v in victims)], body,
                     class_="results transfer", id=f"transfer-hr{k}")
    return out


def _attack_label(v: Variant) -> str:
    return v.name + ("" if v.filler is None else f" (filler {v.filler_text})")


def _transfer_cell(s: ShillingGroup | None, best: ShillingGroup | None, metric: str,
                   test: str) -> str:
    """One attack's HR on one victim; the optimised ones against ``best`` (see above)."""
    if s is None:
        return esc("—")
    value = esc(fmt_num(group_stats(s.group, metric)[0]))
    if s is best:
        return tag("u", value)
    if s.group.method not in POISONING_ATTACKS or best is None:
        return value
    by_seed = {r["seed"]: r for r in best.group.rows}
    res = compare([(r, by_seed[r["seed"]]) for r in s.group.rows if r["seed"] in by_seed],
                  metric, test)
    if res is None:
        return value + esc(f" (vs {best.variant.name}: n/a)")
    text = value + esc(f" (vs {best.variant.name}, p {fmt_p(res.p_max)})")
    return tag("b", text) if res.mean_diff > 0 and res.p_max < 0.05 else text


def budget_figure(groups: list[ShillingGroup], ks: list[int]) -> str:
    """Target HR@k (the smallest k) after each undefended attack against its size: one panel
    per victim, one line per attack (its filler and options), the clean model's dashed; only
    when some attack was run at two sizes or more."""
    if not ks:
        return ""
    k = ks[0]
    undefended = [s for s in groups if s.defense == NO_DEFENSE]
    lines: dict[str, dict[str, list[tuple[float, float]]]] = {}
    clean: dict[str, list[float]] = {}
    for s in undefended:
        label = s.variant.name + ("" if s.variant.filler is None
                                  else f" (filler {s.variant.filler_text})")
        after = group_stats(s.group, f"target_hr@{k}")[0]
        lines.setdefault(s.group.label, {}).setdefault(label, []).append((s.variant.size, after))
        clean.setdefault(s.group.label, []).append(
            group_stats(s.group, f"target_hr@{k}_before")[0])
    if not any(len(points) > 1 for per in lines.values() for points in per.values()):
        return ""
    attacks = unique(a for per in lines.values() for a in per)
    fig, axes = panel_grid(len(lines), 3, (4.2, 3.5))
    for ax, (victim, per) in zip(axes, lines.items(), strict=False):
        for attack, points in per.items():
            points.sort()
            ax.plot([x for x, _ in points], [y for _, y in points], marker="o", linewidth=1.4,
                    color=f"C{attacks.index(attack) % 10}", label=attack)
        ax.axhline(float(sum(clean[victim]) / len(clean[victim])), color="grey",
                   linestyle=CLEAN_STYLE, linewidth=1, label="clean")
        ax.set(xlabel="fake users (fraction of real users)", ylabel=f"target HR@{k}")
        ax.set_title(victim, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    caption = (f"The targets' hit ratio@{k} on each victim retrained on the poisoned data, "
               f"against the attack size (no defence; means over seeds); dashed: the clean "
               f"model")
    return figure_html(fig, caption, "shill-budget", wide=True)


def certificates(groups: list[ShillingGroup]) -> dict[str, list[dict]]:
    """The PORE certificates of the ``pore``-defended cells, one per seed, by ensemble
    (base, s, T, N); each was computed on the clean training data, so every attack's cell of a
    seed holds the same one."""
    found: dict[str, dict[int, dict]] = {}
    for s in groups:
        for r in s.group.rows:
            cert = (r.get("measures") or {}).get("certificate")
            if cert:
                label = f"PORE({cert['base']}, s={cert['s']}, T={cert['T']}) @{cert['N']}"
                found.setdefault(label, {}).setdefault(r["seed"], cert)
    return {label: [per[seed] for seed in sorted(per)] for label, per in found.items()}


def certificate_figure(groups: list[ShillingGroup]) -> str:
    """PORE's certified hit ratio and precision at N against the number of fake users e (means
    over seeds), with the ensemble's clean (empirical) values at e = 0 as dotted lines."""
    found = certificates(groups)
    if not found:
        return ""
    fig, axes = panel_grid(2, 2, (4.2, 3.5))
    max_e = min(len(c[0]["e"]) for c in found.values()) - 1
    columns = sorted({j for j in (0, 1, 5, 10, max_e) if j <= max_e})
    rows = []
    for i, (label, certs) in enumerate(found.items()):
        e = certs[0]["e"]
        n = certs[0]["N"]
        for ax, key, clean_key, name in ((axes[0], "certified_hr", f"hr@{n}", "hit ratio"),
                                         (axes[1], "certified_precision", f"precision@{n}",
                                          "precision")):
            y = [sum(c[key][j] for c in certs) / len(certs) for j in range(len(e))]
            ax.plot(e, y, linewidth=1.4, color=f"C{i % 10}", label=label)
            clean = sum(c["clean"][clean_key] for c in certs) / len(certs)
            ax.axhline(clean, color=f"C{i % 10}", linestyle=":", linewidth=1)
            ax.set(xlabel="fake users e", ylabel=f"certified {name}@{n}")
        hr = [sum(c["certified_hr"][j] for c in certs) / len(certs) for j in range(len(e))]
        clean_hr = sum(c["clean"][f"hr@{n}"] for c in certs) / len(certs)
        rows.append([esc(x) for x in (label, len(certs), fmt_num(clean_hr, 3),
                                      *(fmt_num(hr[j], 3) for j in columns if j < len(hr)))])
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    caption = ("PORE (Jia et al., USENIX Security 2023) trained on the clean data: the share of "
               "test users with at least one certified hit in their top N (left) and the "
               "certified precision@N (right), guaranteed against any e fake users; dotted: the "
               "ensemble's empirical clean values (means over seeds)")
    head = ["ensemble", "seeds", "clean HR", *(f"certified HR e={j}" for j in columns)]
    return figure_html(fig, caption, "shill-pore", wide=True) + table(head, rows)


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
