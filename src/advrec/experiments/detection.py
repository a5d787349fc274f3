"""Plots of a detection study: ROC and precision-recall curves per held-out attack and detector,
and the distributions of profile features for real and injected profiles."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from advrec.attacks.shilling import generate, select_targets
from advrec.data.interactions import Interactions
from advrec.defenses.features import profile_features
from advrec.outputs import atomic_write


def _save(fig, path: Path) -> Path:
    """Write a figure atomically into a folder that exists; the format follows the suffix."""
    import matplotlib.pyplot as plt

    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=110))
    finally:
        plt.close(fig)
    return path


def plot_curves(rows: Sequence[Mapping], folder: str | os.PathLike, suffix: str = ".png"
                ) -> list[Path]:
    """``roc`` and ``pr`` figures (rows from ``detection_study(..., curves=True)``): one panel
    per held-out attack, one line per detector."""
    from matplotlib.figure import Figure

    attacks = list(dict.fromkeys(r["held_out"] for r in rows))
    out = []
    for kind, (x, y), labels in (("roc", ("fpr", "tpr"), ("false positive rate", "recall")),
                                 ("pr", ("recall", "precision"), ("recall", "precision"))):
        fig = Figure(figsize=(3.2 * len(attacks), 3.2))
        axes = fig.subplots(1, len(attacks), squeeze=False)[0]
        for ax, attack in zip(axes, attacks, strict=True):
            for r in rows:
                if r["held_out"] == attack and f"{kind}_curve" in r:
                    curve = r[f"{kind}_curve"]
                    auc = r["roc_auc"] if kind == "roc" else r["pr_auc"]
                    ax.plot(curve[x], curve[y], label=f"{r['detector']} ({auc:.2f})")
            ax.set_title(f"held out: {attack}", fontsize=9)
            ax.set_xlabel(labels[0], fontsize=8)
            ax.set_ylabel(labels[1], fontsize=8)
            ax.legend(fontsize=7)
        fig.tight_layout()
        out.append(_save(fig, Path(folder) / f"{kind}{suffix}"))
    return out


def plot_feature_distributions(data: Interactions, attack: str = "average", size: float = 0.05,
                               filler: float = 0.05, folder: str | os.PathLike = ".",
                               suffix: str = ".png", seed: int = 0) -> Path:
    """Histograms of every profile feature for real users and for injected ``attack`` profiles."""
    from matplotlib.figure import Figure

    targets = select_targets(data, 3, "quantile", seed=seed)
    fake = generate(attack, data, targets, size=size, filler=filler, seed=seed)
    poisoned = data.concat(fake)
    feats = profile_features(poisoned)
    is_fake = feats.users >= data.n_users
    n = len(feats.names)
    cols = 4
    fig = Figure(figsize=(3.0 * cols, 2.4 * ((n + cols - 1) // cols)))
    axes = fig.subplots((n + cols - 1) // cols, cols, squeeze=False).ravel()
    for ax, name in zip(axes, feats.names, strict=False):
        values = feats.column(name)
        bins = np.histogram_bin_edges(values[np.isfinite(values)], bins=30)
        ax.hist(values[~is_fake], bins=bins, alpha=0.6, density=True, label="real")
        ax.hist(values[is_fake], bins=bins, alpha=0.6, density=True, label=f"fake ({attack})")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    for ax in axes[n:]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, Path(folder) / f"features{suffix}")
