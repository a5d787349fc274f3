"""The report's section on content-attack cells (contributed by the ``content`` scenario): the
attacked category's hit ratio against ε per model, method and image defence, the attack's
success rate and image quality, and a few posters before and after with their predicted
classes."""

from __future__ import annotations

from advrec.experiments.reporting import (
    CLEAN_STYLE,
    Group,
    ReportData,
    Section,
    esc,
    figure_html,
    fmt_num,
    legend,
    mean_std,
    new_figure,
    table,
    tag,
    unique,
)

MARKERS = {"none": "o", "jpeg": "s", "bit_depth": "^"}
STYLES = {"pgd": "-", "fgsm": "--"}


def _k(data: ReportData) -> int:
    return min((data.config or {}).get("evaluation", {}).get("ks", [10]))


def _mean(g: Group, key: str, where: str = "measures") -> float:
    return mean_std([(r.get(where) or {}).get(key) for r in g.rows])[0]


def _variant(g: Group) -> tuple[str, str]:
    cfg = g.rows[0]["attack_config"]
    return cfg["method"], cfg["transform"]


def content_section(data: ReportData, groups: list[Group]) -> Section:
    """CHR vs ε, the table of every content group, and before/after examples."""
    k = _k(data)
    body = chr_figure(data, groups, k) + content_table(groups, k) + examples_html(groups)
    return Section("content", "Content attacks",
                   tag("section", tag("div", tag("h2", "Content attacks (TAaMR)") + body),
                       id="content"))


def chr_figure(data: ReportData, groups: list[Group], k: int) -> str:
    """CHR@k of the attacked category vs ε, one line per model × method × defence; each
    model's clean CHR as a dotted line."""
    fig = new_figure((9.0, 4.6))
    ax = fig.add_subplot()
    metric = f"chr@{k}"
    for label in unique(g.label for g in groups):
        mine = [g for g in groups if g.label == label]
        for method, transform in unique(_variant(g) for g in mine):
            line = sorted((g for g in mine if _variant(g) == (method, transform)),
                          key=lambda g: g.eps)
            ax.plot([g.eps for g in line], [_mean(g, metric, "metrics") for g in line],
                    color=data.colour(label), linestyle=STYLES.get(method, ":"),
                    marker=MARKERS.get(transform, "x"), markersize=5,
                    label=f"{label} · {method}" + ("" if transform == "none"
                                                  else f" + {transform}"))
        ax.axhline(_mean(mine[0], f"{metric}_before", "metrics"), color=data.colour(label),
                   linestyle=CLEAN_STYLE, linewidth=1, alpha=0.8, label=f"{label} · clean")
    ax.set_xlabel("ε (L∞, 0–255 pixel units)")
    ax.set_ylabel(f"CHR@{k} of the attacked category")
    ax.set_title("Category hit ratio under TAaMR")
    ax.grid(True, alpha=0.3)
    legend(ax)
    return figure_html(fig, f"Share of the users' top-{k} slots filled by the source category's "
                            f"items after the attack (dotted: before)", "plot-content-chr",
                       wide=True)


def content_table(groups: list[Group], k: int) -> str:
    head = ["model", "method", "ε", "defence", "source → target", "attacked", "success",
            "PSNR (dB)", "SSIM", f"CHR@{k} before", f"CHR@{k} after", "×"]
    rows = []
    for g in groups:
        m = g.rows[0]["measures"] or {}
        before = _mean(g, f"chr@{k}_before", "metrics")
        after = _mean(g, f"chr@{k}", "metrics")
        method, transform = _variant(g)
        rows.append([esc(g.label), esc(method), esc(f"{g.eps:g}"), esc(transform),
                     esc(f"{m.get('source_name')} → {m.get('target_name')}"),
                     esc(f"{m.get('n_attacked')} of {m.get('n_source_items')}"),
                     esc(fmt_num(_mean(g, "success_rate"), 3)),
                     esc(fmt_num(_mean(g, "mean_psnr"), 1)),
                     esc(fmt_num(_mean(g, "mean_ssim"), 3)),
                     esc(fmt_num(before)), esc(fmt_num(after)),
                     esc(fmt_num(after / before, 2) if before else "—")])
    return table(head, rows, class_="results")


def examples_html(groups: list[Group]) -> str:
    """The first seed's examples of each attack variant (once, whatever the model)."""
    seen: set[tuple] = set()
    blocks = []
    for g in groups:
        key = (*_variant(g), g.eps)
        examples = (g.rows[0]["measures"] or {}).get("examples") or []
        if key in seen or not examples:
            continue
        seen.add(key)
        cards = "".join(
            tag("figure",
                tag("img", src=e["before"], alt=f"item {e['item']} before", width="112")
                + tag("img", src=e["after"], alt=f"item {e['item']} after", width="112")
                + tag("figcaption", esc(f"item {e['item']}: {e['class_before']} → "
                                        f"{e['class_after']} (PSNR {e['psnr']:.1f} dB, "
                                        f"SSIM {e['ssim']:.3f})")),
                class_="poster")
            for e in examples)
        blocks.append(tag("h3", esc(f"{key[0]} ε={key[2]:g}, defence {key[1]}")) + cards)
    return tag("div", "".join(blocks), class_="examples") if blocks else ""
