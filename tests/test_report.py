"""The experiment report: structure of the HTML (stdlib parser), its numbers against the store,
and the page as headless Chromium renders it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from advrec.errors import ConfigError, OutputError
from advrec.evaluation.significance import paired_test
from advrec.experiments.config import parse_config
from advrec.experiments.report import write_report
from advrec.experiments.reporting import scope_svg_ids
from advrec.experiments.runner import run_experiment
from advrec.experiments.store import ResultsStore

RAW = {
    "name": "tiny",
    "description": "A tiny <b>sweep</b> & its report",
    "data": {"dataset": "movielens-500"},
    "models": [
        {"name": "bprmf", "label": "BPR-MF", "params": {"epochs": 2}},
        {"name": "apr", "label": "APR", "init": "BPR-MF", "params": {"epochs": 2}},
    ],
    "attacks": [{"method": "fgsm", "eps": [0.5, 1.0]}, {"method": "random", "eps": [0.5, 1.0]}],
    "evaluation": {"ks": [10]},
    "seeds": [0, 1],
}
METRICS = ["hr@10", "ndcg@10", "auc"]
CONDITIONS = [("none", "—"), ("fgsm", "0.5"), ("fgsm", "1"), ("random", "0.5"), ("random", "1")]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
SKIP_NO_CHROMIUM = ("headless Chromium not found: install the Debian package 'chromium' "
                    "(CI's .ci/run does)")


# ---------------------------------------------------------------------------- a tiny DOM
class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Descendants with this tag whose attributes contain the given values (``class_`` is
        one of the classes)."""
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if child.matches(tag, attrs):
                    found.append(child)
                found.extend(child.find_all(tag, **attrs))
        return found

    def find(self, tag: str | None = None, **attrs: str) -> Node:
        hits = self.find_all(tag, **attrs)
        assert hits, f"no <{tag}> with {attrs}"
        return hits[0]

    def matches(self, tag: str | None, attrs: dict[str, str]) -> bool:
        if tag is not None and self.tag != tag:
            return False
        for k, v in attrs.items():
            if k == "class_":
                if v not in (self.attrs.get("class") or "").split():
                    return False
            elif self.attrs.get(k) != v:
                return False
        return True

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)


class DomBuilder(HTMLParser):
    """html.parser into a :class:`Node` tree (tolerates the SVG self-closing tags)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(text: str) -> Node:
    builder = DomBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


def table_rows(table: Node) -> list[list[str]]:
    """The body rows of a table as lists of cell texts."""
    return [[td.text.strip() for td in tr.find_all("td")]
            for tr in table.find("tbody").find_all("tr")]


# ---------------------------------------------------------------------------- fixtures
def run_fresh(raw: dict, folder: Path, cells: int) -> Path:
    """Run the experiment ``raw`` into ``folder``; it must make exactly ``cells`` cells."""
    config = parse_config(raw).model_copy(update={"output": str(folder)})
    summary = run_experiment(config, progress=False)
    assert summary.total == cells and summary.done_now == cells
    return folder


@pytest.fixture(scope="module")
def experiment(data_dir, tmp_path_factory) -> Path:
    """A finished tiny experiment (2 models × 2 seeds × clean + 4 attacks) and its report."""
    return run_fresh(RAW, tmp_path_factory.mktemp("tiny"), 20)


@pytest.fixture(scope="module")
def report(experiment) -> tuple[Path, str, Node]:
    path = write_report(experiment)
    text = path.read_text(encoding="utf-8")
    return path, text, parse(text)


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "/usr/bin/chromium"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(SKIP_NO_CHROMIUM)


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage",
             f"--user-data-dir={profile}"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=90,
                          check=False)


# ---------------------------------------------------------------------------- structure
def test_report_is_written_atomically_where_asked(experiment, report, tmp_path):
    path, _, _ = report
    assert path == experiment / "report.html"
    assert not list(experiment.glob(".*.tmp"))
    with pytest.raises(OutputError, match="does not exist"):  # a typo makes no new folders
        write_report(experiment, tmp_path / "sub" / "r.html")
    (tmp_path / "sub").mkdir()
    other = write_report(experiment, tmp_path / "sub" / "r.html")
    assert other == tmp_path / "sub" / "r.html" and other.stat().st_size > 10_000


def test_sections_title_and_escaping(report):
    _, text, doc = report
    for id_ in ("summary", "config", "results", "significance", "training", "robustness"):
        assert doc.find(id=id_) is not None, id_
    # the navigation lists the sections in order: the common ones, then each scenario's
    assert [a.attrs["href"] for a in doc.find("nav").find_all("a")] == [
        "#config", "#results", "#significance", "#training", "#robustness"]
    assert doc.find("h1").text == "tiny"
    assert doc.find("p", class_="description").text == RAW["description"]
    assert "<b>sweep</b>" not in text  # the description was escaped, not interpreted
    meta = doc.find("dl", class_="meta").text
    assert "20 of 20" in meta and "advrec" in meta and "torch" in meta


def test_config_is_the_experiment_json(report, experiment):
    _, _, doc = report
    pre = doc.find("section", id="config").find("details").find("pre")
    shown = json.loads(pre.text)
    assert shown == json.loads((experiment / "experiment.json").read_text())
    assert shown["name"] == "tiny"


def test_results_table_rows_and_numbers(report, experiment):
    _, _, doc = report
    table = doc.find("table", id="results-table")
    head = [th.text for th in table.find("thead").find_all("th")]
    assert head == ["Model", "Attack", "ε", "Seeds", *METRICS]
    rows = table_rows(table)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (m, a, e) for m in ("BPR-MF", "APR") for a, e in CONDITIONS]
    assert all(r[3] == "2" for r in rows)
    assert all("±" in cell for r in rows for cell in r[4:])
    frame = ResultsStore(experiment, read_only=True).frame()
    clean = frame[(frame.model_label == "BPR-MF") & (frame.attack == "none")]
    attacked = frame[(frame.model_label == "BPR-MF") & (frame.attack == "fgsm")
                     & (frame.eps == 1.0)]
    assert rows[0][4].startswith(f"{clean['hr@10'].mean():.4f} ± {clean['hr@10'].std():.4f}")
    change = attacked["ndcg@10"].mean() / clean["ndcg@10"].mean() - 1
    assert f"{change * 100:+.1f} %".replace("-", "−") in rows[2][5]
    assert "%" not in rows[0][4]  # a clean cell has no change vs itself


def test_significance_p_values(report, experiment):
    _, _, doc = report
    section = doc.find("section", id="significance")
    attack = section.find("table", id="sig-attack")
    rows = table_rows(attack)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (m, a, e) for m in ("BPR-MF", "APR") for a, e in CONDITIONS[1:]]
    ps = [float(s.attrs["data-p"]) for s in attack.find_all("span", class_="p")]
    assert len(ps) == len(rows) * len(METRICS) and all(0 <= p <= 1 for p in ps)
    assert len(attack.find_all("span", class_="per-seed")) == len(ps)  # two seeds listed
    # the shown p is the largest over seeds of the paired test over users
    cells = {(r["seed"], r["attack"], r["eps"]): r
             for r in ResultsStore(experiment, read_only=True).rows()
             if r["model_label"] == "BPR-MF"}
    expected = max(paired_test(cells[(s, "fgsm", 0.5)]["per_user"]["auc"],
                               cells[(s, "none", None)]["per_user"]["auc"])["p_value"]
                   for s in (0, 1))
    first_row = attack.find("tbody").find("tr")
    shown = float(first_row.find_all("span", class_="p")[METRICS.index("auc")].attrs["data-p"])
    assert np.isclose(shown, expected, rtol=1e-9)

    init = section.find("table", id="sig-init")
    rows = table_rows(init)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("APR", "BPR-MF", a, e) for a, e in CONDITIONS]
    assert re.search(r"\d", rows[0][4])


def test_plots_are_inline_svg(report):
    _, _, doc = report
    figures = [f for id_ in ("robustness", "training")
               for f in doc.find("section", id=id_).find_all("figure", class_="plot")]
    assert len(figures) >= 3
    assert all(f.find_all("svg") for f in figures)
    ids = {f.attrs["id"] for f in figures}
    assert {"plot-hr-10", "plot-ndcg-10", "plot-auc", "plot-training-loss"} <= ids


def test_self_contained(report):
    _, text, doc = report
    assert not doc.find_all("script") and not doc.find_all("link")
    assert not doc.find_all("img")
    for node in doc.find_all():
        for attr in ("src", "href", "xlink:href"):
            value = node.attrs.get(attr) or ""
            assert not re.match(r"\s*(https?:)?//", value), (node.tag, attr, value)
    assert "@import" not in text and "url(http" not in text
    ids = [n.attrs["id"] for n in doc.find_all() if n.attrs.get("id")]
    assert len(ids) == len(set(ids)), "ids repeat across the inline SVGs"


# ---------------------------------------------------------------------------- errors, helpers
def test_folder_without_results(tmp_path):
    with pytest.raises(ConfigError, match="no results here"):
        write_report(tmp_path)


def test_empty_store(tmp_path):
    ResultsStore(tmp_path).close()
    with pytest.raises(ConfigError, match="no finished cells"):
        write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_scope_svg_ids_prefixes_definitions_and_references():
    svg = ('<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg><metadata>x</metadata><defs>'
           '<clipPath id="p1"/><path id="m2"/></defs><g clip-path="url(#p1)">'
           '<use xlink:href="#m2"/><a href="#elsewhere"/></g></svg>')
    out = scope_svg_ids(svg, "f")
    assert out.startswith("<svg>") and "metadata" not in out
    assert 'id="f-p1"' in out and "url(#f-p1)" in out and 'xlink:href="#f-m2"' in out
    assert 'href="#elsewhere"' in out


# ---------------------------------------------------------------------------- the browser
def test_renders_in_headless_chromium(report, chromium, tmp_path):
    import matplotlib.image as mpimg

    path, _, _ = report
    url = path.resolve().as_uri()
    dom = run_chromium(chromium, tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    doc = parse(dom.stdout)
    for id_ in ("config", "results", "significance", "training", "robustness"):
        assert doc.find("section", id=id_) is not None, id_
    figures = doc.find("section", id="robustness").find_all("figure", class_="plot")
    assert len(figures) >= 3 and all(f.find_all("svg") for f in figures)

    shot = tmp_path / "shot.png"
    res = run_chromium(chromium, tmp_path / "profile", f"--screenshot={shot}",
                       "--window-size=1280,2000", url)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    assert shot.stat().st_size > 20_000
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    colours = np.unique((pixels.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colours) > 50  # text, tables, ... not a blank page
    assert (pixels < 0.9).any(axis=-1).mean() > 0.01  # some ink


def test_rows_of_an_earlier_file_are_left_out(experiment, tmp_path):
    """experiment.json is the file of the latest run: cells it no longer has are only counted,
    and its labels are shown."""
    folder = tmp_path / "copy"
    shutil.copytree(experiment, folder, ignore=shutil.ignore_patterns("models", "report.html"))
    config = json.loads((folder / "experiment.json").read_text())
    config["models"][1]["label"] = "APR (renamed)"  # labels are not part of a cell's key
    (folder / "experiment.json").write_text(json.dumps({**config, "seeds": [1]}))
    doc = parse(write_report(folder).read_text())
    rows = table_rows(doc.find("table", id="results-table"))
    assert [r[0] for r in rows] == ["BPR-MF"] * 5 + ["APR (renamed)"] * 5
    assert all(r[3] == "1" for r in rows)
    meta = doc.find("dl", class_="meta").text
    assert "10 of 10" in meta and "10 row(s)" in meta
    (folder / "experiment.json").unlink()  # without it: every row, in the store's order
    doc = parse(write_report(folder).read_text())
    assert len(table_rows(doc.find("table", id="results-table"))) == 10
    assert "experiment.json" in doc.find("section", id="config").text


# ---------------------------------------------------------------------------- shilling
SHILLING_RAW = {
    "name": "tiny-shilling",
    "data": {"dataset": "ml-100k", "fold": "u1"},
    "models": [{"name": "bprmf", "label": "BPR-MF", "params": {"epochs": 1}}],
    "attacks": [{"method": "fgsm", "eps": [0.5]}],
    "shilling": [{"attack": "average", "size": 0.05, "filler": 0.05, "n_targets": 3}],
    "defenses": ["pca", "perfect"],
    "evaluation": {"ks": [10], "metrics": ["hr", "ndcg"]},
    "seeds": [0, 1],
}
DEFENCES = ["none", "pca", "perfect"]


@pytest.fixture(scope="module")
def shilling_experiment(data_dir, tmp_path_factory) -> Path:
    """A finished tiny shilling experiment: per seed, clean + fgsm + average profiles with no
    defence, PCA and the perfect detector (the targets drawn differ from seed to seed)."""
    return run_fresh(SHILLING_RAW, tmp_path_factory.mktemp("shilling"), 10)


@pytest.fixture(scope="module")
def shilling_report(shilling_experiment) -> tuple[str, Node]:
    text = write_report(shilling_experiment).read_text(encoding="utf-8")
    return text, parse(text)


def shilling_rows(folder: Path, defense: str) -> list[dict]:
    return [r for r in ResultsStore(folder, read_only=True).rows()
            if r["attack"] == "average" and r["defense"] == defense]


def test_shilling_section_table(shilling_report, shilling_experiment):
    _, doc = shilling_report
    assert doc.find("nav").find("a", href="#shilling").text == "Shilling attacks and defences"
    section = doc.find("section", id="shilling")
    assert section.find("h2").text == "Shilling attacks and defences"
    table = section.find("table", id="shilling-table")
    head = [th.text for th in table.find("thead").find_all("th")]
    assert head == ["Model", "Attack", "Size", "Filler", "Defence", "Seeds", "hr@10", "ndcg@10",
                    "Target HR@10 before → after", "Precision", "Recall", "F1", "ROC-AUC",
                    "Removed real users"]
    rows = table_rows(table)
    assert [r[:6] for r in rows] == [["BPR-MF", "average", "0.05", "0.05", d, "2"]
                                     for d in DEFENCES]
    by_defence = {r[4]: r for r in rows}
    pca = shilling_rows(shilling_experiment, "pca")
    assert len(pca) == 2
    recall = np.mean([r["detection"]["recall"] for r in pca])
    assert by_defence["pca"][head.index("Recall")] == f"{recall:.3f}"
    removed = np.mean([r["detection"]["removed_real"] for r in pca])
    assert by_defence["pca"][head.index("Removed real users")] == f"{round(removed, 1):g}"
    assert by_defence["perfect"][head.index("Precision")] == "1.000"
    assert by_defence["none"][head.index("Recall")] == "—"  # no detector, no detection
    undefended = shilling_rows(shilling_experiment, "none")
    before, after = (np.mean([r["metrics"][f"target_hr@10{s}"] for r in undefended])
                     for s in ("_before", ""))
    assert by_defence["none"][head.index("Target HR@10 before → after")] == (
        f"{before:.4f} → {after:.4f}")
    clean = [r for r in ResultsStore(shilling_experiment, read_only=True).rows()
             if r["attack"] == "none"]
    change = (np.mean([r["metrics"]["hr@10"] for r in undefended])
              / np.mean([r["metrics"]["hr@10"] for r in clean]) - 1)
    assert f"{change * 100:+.1f} %".replace("-", "−") in by_defence["none"][head.index("hr@10")]


def test_shilling_figures_are_inline_svg(shilling_report, shilling_experiment):
    _, doc = shilling_report
    figures = {f.attrs["id"]: f for f in doc.find("section", id="shilling").find_all(
        "figure", class_="plot")}
    assert set(figures) == {"shill-roc", "shill-pr", "shill-features-1"}
    assert all(f.find_all("svg") for f in figures.values())
    pca = shilling_rows(shilling_experiment, "pca")
    roc_auc = np.mean([r["detection"]["roc_auc"] for r in pca])
    roc = figures["shill-roc"].text
    assert f"pca (AUC {roc_auc:.3f})" in roc and "perfect" not in roc  # the oracle is left out
    assert "average · size 0.05 · filler 0.05" in roc
    pr_auc = np.mean([r["detection"]["pr_auc"] for r in pca])
    assert f"pca (AUC {pr_auc:.3f})" in figures["shill-pr"].text
    features = figures["shill-features-1"]
    names = pca[0]["detection"]["features"]
    assert names and all(name in features.text for name in names)
    assert "detector pca, seed 0" in features.find("figcaption").text


def test_shilling_groups_in_results_significance_and_plots(shilling_report):
    text, doc = shilling_report
    rows = table_rows(doc.find("table", id="results-table"))
    head = [th.text for th in doc.find("table", id="results-table").find_all("th")]
    assert head == ["Model", "Attack", "ε", "Seeds", "hr@10", "ndcg@10"]  # no target_hr@10
    # one group per defence over both seeds, although each seed drew other targets
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("none", "—", "2"), ("fgsm", "0.5", "2"),
        *((f"shilling: average (defense={d})", "—", "2") for d in DEFENCES)]
    sig = table_rows(doc.find("table", id="sig-attack"))
    assert [r[1] for r in sig] == ["fgsm",
                                   *(f"shilling: average (defense={d})" for d in DEFENCES)]
    assert all(re.search(r"\d", cell) for r in sig for cell in r[3:])
    plots = {f.attrs["id"] for id_ in ("robustness", "training")
             for f in doc.find("section", id=id_).find_all("figure")}
    assert {"plot-hr-10", "plot-ndcg-10", "plot-training-loss"} <= plots
    ids = [n.attrs["id"] for n in doc.find_all() if n.attrs.get("id")]
    assert len(ids) == len(set(ids))
    assert not doc.find_all("script") and "url(http" not in text


TRANSFER_RAW = {
    "name": "tiny-transfer",
    "data": {"dataset": "ml-100k", "fold": "u1"},
    "models": [{"name": "bprmf", "label": "BPR-MF", "params": {"epochs": 3}}],
    "shilling": [{"attack": "average", "size": 0.05, "filler": 40, "n_targets": 3},
                 {"attack": "popular", "size": 0.05, "filler": 40, "n_targets": 3},
                 {"attack": "pga", "size": 0.05, "n_targets": 3,
                  "params": {"iterations": 2, "epochs": 4}}],
    "evaluation": {"ks": [50], "metrics": ["hr"]},
    "seeds": [0],
}


def test_transfer_table_tests_each_optimised_attack_against_the_best_hand_crafted(
        data_dir, tmp_path):
    folder = run_fresh(TRANSFER_RAW, tmp_path / "t", 4)
    with ResultsStore(folder, read_only=True) as store:
        rows = {r["attack"]: r for r in store.rows() if r["scenario"] == "shilling"}
    blocks = {a: r["per_user"]["targets"] for a, r in rows.items()}
    for a, b in blocks.items():  # the targets' per-user values, kept with every shilling cell
        users = np.asarray(b["users"])
        assert len(users) > 100 and np.all(np.diff(users) > 0), a
        assert len(b["target_hr@50"]) == len(b["target_rank"]) == len(users)
        assert min(b["target_hr@50"]) >= 0 and max(b["target_hr@50"]) <= 1
    best = max(("average", "popular"), key=lambda a: rows[a]["metrics"]["target_hr@50"])
    doc = parse(write_report(folder).read_text(encoding="utf-8"))
    table = doc.find("table", id="transfer-hr50")
    assert [th.text for th in table.find_all("th")] == ["Size", "Attack", "BPR-MF: HR@50"]
    cells = {tr.find_all("td")[1].text: tr.find_all("td")[2] for tr in table.find_all("tr")[1:]}
    assert set(cells) == {"average (filler 40)", "popular (filler 40)", "pga"}
    assert cells[f"{best} (filler 40)"].find_all("u")  # the best hand-crafted one
    # the p-value is the paired test over the users both cells measured
    a, b = blocks["pga"], blocks[best]
    _, ia, ib = np.intersect1d(a["users"], b["users"], return_indices=True)
    expected = paired_test(np.asarray(a["target_hr@50"])[ia], np.asarray(b["target_hr@50"])[ib])
    p = expected["p_value"]
    text = cells["pga"].text
    assert f"vs {best}, p {p:.1e}" in text if p < 1e-3 else f"vs {best}, p {p:.3f}" in text
    hr = rows["pga"]["metrics"]["target_hr@50"]
    assert text.startswith(f"{hr:.4f}")
    assert bool(cells["pga"].find_all("b")) == (expected["mean_diff"] > 0 and p < 0.05)


def test_no_shilling_section_without_shilling_cells(report):
    _, text, doc = report
    assert not doc.find_all(id="shilling") and 'href="#shilling"' not in text
    assert "Shilling attacks and defences" not in text


def test_history_points_of_dicts_and_plain_numbers():
    from advrec.experiments.report_plots import history_points

    dicts = [{"epoch": 1, "loss": 0.5, "validation": None}, {"epoch": 2, "loss": 0.4,
                                                              "validation": 0.3}]
    assert history_points(dicts, "loss") == [(1, 0.5), (2, 0.4)]
    assert history_points(dicts, "validation") == [(2, 0.3)]
    assert history_points([0.9, 0.7], "loss") == [(1, 0.9), (2, 0.7)]  # e.g. mf
    assert history_points([0.9, 0.7], "validation") == []
