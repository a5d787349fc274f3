"""The ``advrec`` command: data sets, training, evaluation and the demo job."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import advrec.vocabulary as V
from advrec.errors import AdvrecError

app = typer.Typer(
    name="advrec",
    help="Adversarial learning for recommender systems: train, attack, defend, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)  # soft wrap: a long path is never broken by a newline
out = Console(soft_wrap=True)

RUN_FILE = "run.json"


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A choice type for Typer from one of advrec's vocabularies (members named like the values,
    ``-`` as ``_``), so the command line offers exactly what the library knows."""
    return Enum(name, [(v.replace("-", "_"), v) for v in values], type=str)


Protocol = _choices("Protocol", V.PROTOCOLS)
SplitName = _choices("SplitName", V.SPLITS)
AttackMethod = _choices("AttackMethod", V.PERTURBATIONS)
Norm = _choices("Norm", V.NORMS)
TargetMode = _choices("TargetMode", V.TARGET_MODES)
ValidName = _choices("ValidName", V.VALIDATION_SPLITS)
Intent = _choices("Intent", V.INTENTS)
Executor = _choices("Executor", V.EXECUTORS)


DEBUG = {"on": False}
OVERWRITE_HELP = "Replace an earlier advrec output there (only the files advrec wrote)."


def _print_version(value: bool) -> None:
    if value:
        from advrec._version import __version__

        print(f"advrec {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="On an error, show the full traceback too.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print advrec's version and exit.", is_eager=True, callback=_print_version)] = False,
) -> None:
    """Adversarial learning for recommender systems: train, attack, defend, evaluate."""
    DEBUG["on"] = debug


@contextmanager
def _errors(options: dict[str, str] | None = None) -> Iterator[None]:
    """The CLI boundary: every failure is one line on stderr, no traceback (``--debug`` shows it).

    advrec's own errors and file-system errors exit with 2 (the input or the place was wrong);
    ``options`` renames a library argument to the command's option in the message (``n_factors``
    → ``--dim``). Anything else is an internal error: exit 1, with its type and message.
    """
    from typer.exceptions import TyperException

    try:
        yield
    except (typer.Exit, typer.Abort, TyperException):  # typer's own: usage errors, exit codes
        raise
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:
        if DEBUG["on"]:
            raise
        code, text = _describe_error(exc, options or {})
        print(f"error: {text}", file=sys.stderr)  # one unwrapped line, whatever the width
        raise typer.Exit(code) from None


def _describe_error(exc: Exception, options: dict[str, str]) -> tuple[int, str]:
    from advrec.errors import ParamError

    if isinstance(exc, ParamError):
        return 2, f"{options.get(exc.name, exc.name)}: {exc.reason}"
    if isinstance(exc, AdvrecError):
        return 2, str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return 2, f"{where}{exc.strerror or exc}"
    if isinstance(exc, MemoryError):
        return 2, "out of memory; try a smaller model, batch or data set"
    first = (str(exc).strip().splitlines() or [""])[0]
    return 1, (f"internal error ({type(exc).__name__}: {first}); advrec should have caught "
               f"this: please report it (run again with --debug for the traceback)")


def _check_option(option: str, check, *args, **kwargs):
    """Run a check on an option's value, naming the option in its message."""
    from advrec.errors import ParamError

    try:
        return check(*args, **kwargs)
    except AdvrecError as exc:
        reason = exc.reason if isinstance(exc, ParamError) else str(exc)
        raise _config_error(f"{option}: {reason}") from None


def _setup_threads(threads: int | None) -> None:
    from advrec.validation import check_int

    if threads is not None:
        _check_option("--threads", check_int, threads, "threads", low=1, high=1024)
        import torch

        torch.set_num_threads(threads)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the option ``name`` (its parameter name) was typed on the command line."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


# ---------------------------------------------------------------------------- datasets
@app.command()
def datasets(
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    stats: Annotated[bool, typer.Option("--stats/--no-stats", help="Load each local data set and count users, items and interactions.")] = True,
) -> None:
    """List the known data sets, where each resolves on this machine, and their size."""
    from advrec.data import datasets as ds

    with _errors():
        rows = []
        for info in ds.list_datasets():
            row = {"name": info.name, "where": str(info.path) if info.path else None,
                   "local": info.path is not None, "downloadable": info.downloadable,
                   "protocol": info.protocol, "description": info.description}
            if stats and info.path is not None:
                row.update(ds.describe(info.name))
            rows.append(row)
        if json_out:
            print(json.dumps({"data_dir": str(ds.data_dir()), "datasets": rows}, default=str))
            return
        table = [[r["name"], _fmt_int(r.get("users")), _fmt_int(r.get("items")),
                  _fmt_int(r.get("interactions")),
                  r["where"] or ("download: advrec fetch " + r["name"] if r["downloadable"]
                                 else "missing")] for r in rows]
        _print_table(f"data sets (ADVREC_DATA_DIR = {ds.data_dir()})",
                     ["name", "users", "items", "interactions", "where / source"], table,
                     fold=(4,))


@app.command()
def fetch(
    name: Annotated[str, typer.Argument(help="Data set to download from GroupLens (ml-100k, ml-1m, ml-latest-small).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Download again, replacing an earlier advrec download of it (only the files advrec wrote).")] = False,
) -> None:
    """Download a data set into the cache (hash-checked, size-limited, written atomically); an
    existing copy is reused."""
    from advrec.data import datasets as ds

    with _errors(options={"force": "--overwrite"}):
        path = ds.fetch(name, force=overwrite)
        out.print(f"{name}: {escape(str(path))}")


ListKind = _choices("ListKind", ("models", "attacks", "defenses", "metrics", "datasets"))


@app.command("list")
def list_command(
    kind: Annotated[ListKind, typer.Argument(help="What to list: models, attacks, defenses, metrics or datasets.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
) -> None:
    """List what exists, with each entry's parameters, their defaults and a one-line
    description (read from the registries, so it is always current)."""
    from advrec.experiments.catalogue import entries

    with _errors():
        found = entries(kind.value)
        if json_out:
            print(json.dumps([e.to_dict() for e in found]))
            return
        import textwrap

        width = max(40, min(out.width, 100))

        def para(text: str) -> None:  # indented, wrapped at word boundaries, never cut
            out.print(escape(textwrap.fill(text, width, initial_indent="  ",
                                           subsequent_indent="    ", break_long_words=False,
                                           break_on_hyphens=False)),
                      highlight=False, soft_wrap=True)

        for e in found:
            out.print(f"[bold]{escape(e.name)}[/bold]  [dim]{escape(e.kind)}[/dim]")
            para(e.description)
            if e.params:
                para("parameters: " + ", ".join(
                    f"{k} (required)" if v is None and k in e.required else f"{k}={v!r}"
                    for k, v in e.params.items()))
            for note in e.notes:
                para(note)


def _fmt_int(v) -> str:
    return f"{v:,}" if isinstance(v, int) else "—"


# ---------------------------------------------------------------------------- train
@app.command()
def train(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help=f"Model name: {V.listing(V.MODELS)}.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the trained model and run.json to.")],
    dataset: Annotated[str, typer.Option(help="Data set name (see `advrec datasets`), or the label of --data.")] = "movielens-500",
    data: Annotated[Path | None, typer.Option(help="Your own interaction file instead of a registered data set (needs --format).")] = None,
    data_format: Annotated[str | None, typer.Option("--format", help=f"Format of --data: {V.listing(V.FORMATS)}.")] = None,
    test_data: Annotated[Path | None, typer.Option(help="With --data: its test file (a predefined split in one id space).")] = None,
    sep: Annotated[str | None, typer.Option(help="--format delimited: the separator, e.g. ',' or '\\t'.")] = None,
    columns: Annotated[str | None, typer.Option(help="--format delimited: comma-separated column names (user,item[,rating][,timestamp]; '-' skips one).")] = None,
    header: Annotated[bool, typer.Option("--header", help="--format delimited: the first line is a header.")] = False,
    split: Annotated[SplitName, typer.Option(help="auto = the data set's own split if it has one, else leave-one-out.")] = SplitName.auto,
    test_ratio: Annotated[float, typer.Option(help="Test fraction for holdout/temporal splits.")] = 0.2,
    fold: Annotated[str | None, typer.Option(help="Predefined fold, e.g. u1..u5, ua, ub for ml-100k.")] = None,
    binarize: Annotated[float | None, typer.Option(help="Keep ratings >= this value as implicit positives.")] = None,
    valid: Annotated[ValidName, typer.Option(help="Carve a validation split from training for early stopping.")] = ValidName.none,
    valid_ratio: Annotated[float, typer.Option(help="Validation fraction for --valid holdout.")] = 0.1,
    patience: Annotated[int | None, typer.Option(help="Early stopping: validations without improvement before stopping (needs --valid).")] = None,
    valid_metric: Annotated[str, typer.Option(help="Validation metric for early stopping, e.g. ndcg@100, hr@10.")] = "ndcg@100",
    epochs: Annotated[int, typer.Option(help="Training epochs (maximum with early stopping).")] = 5,
    dim: Annotated[int, typer.Option(help="Embedding size.")] = 64,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 0.05,
    batch_size: Annotated[int, typer.Option(help="Mini-batch size (triples).")] = 512,
    optimizer: Annotated[str, typer.Option(help=f"{V.listing(V.OPTIMIZERS)}.")] = "adagrad",
    reg: Annotated[float, typer.Option(help="L2 regularisation on the batch's embeddings.")] = 0.0,
    backend: Annotated[str, typer.Option(help="auto, numba (compiled CPU epoch) or torch.")] = "auto",
    adversarial: Annotated[str | None, typer.Option(help="Adversarial training: 'apr' (He et al. SIGIR'18) on the model's parameter blocks: bprmf becomes apr; lightgcn trains its adversarial twin.")] = None,
    eps: Annotated[float, typer.Option(help="APR: perturbation size ε (per embedding row, L2).")] = 0.5,
    adv_reg: Annotated[float, typer.Option(help="APR: weight λ of the adversarial loss (0 = plain BPR-MF).")] = 1.0,
    adv_start: Annotated[int, typer.Option(help="APR: plain BPR epochs before the adversarial term switches on.")] = 0,
    init: Annotated[Path | None, typer.Option(help="Start from a saved BPR-MF/APR model folder (e.g. APR after BPR).")] = None,
    model_param: Annotated[list[str], typer.Option("--param", help="Any hyper-parameter of the model as KEY=VALUE (repeat), e.g. --param k=20 for userknn; `advrec list models` shows each model's, with its default.")] = [],  # noqa: B006
    seed: Annotated[int, typer.Option(help="Seed for initialisation, sampling and splits.")] = 0,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 … (default: CUDA when present).")] = None,
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the test metrics as one JSON object.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a model advrec saved at --out before (only its files).")] = False,
) -> None:
    """Train MODEL on a data set split and save it to --out, then evaluate it on test.
    `--adversarial apr` turns BPR-MF into APR. The defaults shown are BPR-MF's (the tutorial's);
    other models keep their own unless an option is typed, and options a model does not take
    are refused."""
    from advrec.data.prepare import DataSpec, prepare
    from advrec.evaluation import Evaluator
    from advrec.metric_names import parse_metric
    from advrec.models import get_model, load_model
    from advrec.models.base import read_manifest
    from advrec.outputs import check_dir

    names = {p: f"--param {p}" for p in _param_keys(model_param)}
    names.update({"init_from": "--init", **{p: f"--{o.replace('_', '-')}" for o, p in TRAIN_PARAMS.items()}})
    with _errors(options=names):
        _setup_threads(threads)
        check_dir(out_dir, "model", overwrite=overwrite)  # before any work, not after it
        recipe = {"dataset": dataset, "split": split.value, "test_ratio": test_ratio,
                  "fold": fold, "binarize": binarize, "valid": valid.value,
                  "valid_ratio": valid_ratio, "seed": seed}
        recipe.update(_own_data(ctx, data, data_format, test_data, sep, columns, header))
        spec = DataSpec(**recipe)
        if patience is not None and spec.valid == "none":
            raise _config_error("--patience needs a validation split (--valid leave-one-out or holdout)")
        if adversarial is not None:
            if adversarial.lower() != "apr":
                raise _config_error(f"--adversarial {adversarial!r}: only 'apr' is known (He et "
                                    f"al. SIGIR'18, on any model with adversarial training)")
            if model.lower() == "bprmf":
                model = "apr"
        cls = get_model(model)
        if adversarial is not None and "adv_reg" not in cls._param_names():
            from advrec.models import MODELS

            able = [n for n, c in MODELS.items() if "adv_reg" in c._param_names()]
            raise _config_error(f"--adversarial: model {cls.name!r} has no adversarial training; "
                                f"models with it: bprmf (as apr), {', '.join(able)}")
        known, options = cls._param_names(), cls.capabilities.fit_options
        for opt, param in TRAIN_PARAMS.items():
            if param not in known and _given(ctx, opt):
                raise _config_error(f"--{opt.replace('_', '-')}: model {cls.name!r} does not take it")
        if init is not None:
            _check_option("--init", cls.check_request, warm_start=read_manifest(init)["model"])
        if spec.valid != "none" and "validate" not in options:
            raise _config_error(f"--valid: model {cls.name!r} takes no validation (it has no "
                                f"early stopping or epoch selection)")
        if patience is not None:
            _check_option("--patience", cls.check_request, early_stopping=True)
        _check_option("--valid-metric", parse_metric, valid_metric)  # before any work
        values = {"dim": dim, "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer,
                  "lr": lr, "reg": reg, "patience": patience, "backend": backend, "device": device,
                  "seed": seed, "eps": eps, "adv_reg": adv_reg, "adv_start": adv_start}
        # options typed on the command line; the others keep the model's own defaults (the
        # defaults --help shows are BPR-MF's, the tutorial's settings)
        kwargs = {name: values[opt] for opt, name in TRAIN_PARAMS.items()
                  if name in known and (_given(ctx, opt) or opt in ("seed", "device"))}
        if adversarial is not None:  # the twin: λ = --adv-reg (1 by default), not the model's 0
            kwargs.setdefault("adv_reg", adv_reg)
        typed = {name: f"--{opt.replace('_', '-')}" for opt, name in TRAIN_PARAMS.items()
                 if _given(ctx, opt)}
        kwargs.update(_model_params(model_param, cls, known, typed))
        rec = cls(**kwargs)
        rec.validate_params()
        parts = prepare(spec)
        fit_kw = {}
        if "progress" in options:
            fit_kw["progress"] = None if not quiet else False
        if parts.valid is not None:
            from advrec.evaluation.selection import metric_validator

            fit_kw["validate"] = metric_validator(parts.train, parts.valid, valid_metric)
        elif "valid" in options:  # CFGAN, IRGAN: the epoch chosen on their own hold-out
            from advrec.evaluation import holdout_validation

            fit_kw.update(holdout_validation(rec, parts.train))
        if init is not None:
            fit_kw["init_from"] = load_model(init, device=device)
        t0 = time.perf_counter()
        rec.fit(parts.train, **fit_kw)
        fit_seconds = time.perf_counter() - t0
        result = Evaluator(parts.train, parts.test, ks=(10, 100)).evaluate(rec)
        run = {"data": spec.to_dict(), "fit_seconds": fit_seconds,
               "history": getattr(rec, "history_", []), "test": result.summary}
        rec.save(out_dir, extra={"run": run}, overwrite=overwrite)
        if json_out:
            print(json.dumps(result.summary))
        elif not quiet:
            out.print(f"trained {model} on {dataset} in {fit_seconds:.2f} s → {escape(str(out_dir))}")
            _print_summary({model: result.summary}, title=f"{dataset}, test ({result.protocol})")


def _model_params(pairs: list[str], cls, known: list[str], typed: dict[str, str]) -> dict:
    """``--param KEY=VALUE`` pairs as model parameters (values read as YAML scalars: 20, 0.5,
    true, null, [1, 2]); refused: a malformed pair, a key the model does not take, a key
    given twice or also by its own option."""
    return _key_values(pairs, "--param", f"model {cls.name!r}", known, typed)


def _key_values(pairs: list[str], option: str, owner: str, known: list[str] | None,
                typed: dict[str, str] | None = None) -> dict:
    """``KEY=VALUE`` pairs of ``option`` (values read as YAML scalars); refused: a malformed
    pair, a key ``owner`` does not take (``known`` None: any key), a key given twice."""
    import yaml

    typed = typed or {}
    found: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise _config_error(f"{option} {pair!r}: expected KEY=VALUE, e.g. {option} "
                                f"epochs=20")
        if known is not None and key not in known:
            raise _config_error(f"{option} {key}: {owner} has no parameter {key!r}; "
                                f"it takes {', '.join(known)}")
        if key in found or key in typed:
            twice = typed.get(key, f"{option} {key}")
            raise _config_error(f"{option} {key}: given twice (also as {twice})")
        try:
            found[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            found[key] = raw
    return found


def _own_data(ctx: typer.Context, data: Path | None, data_format: str | None,
              test_data: Path | None, sep: str | None, columns: str | None,
              header: bool) -> dict:
    """The DataSpec fields of --data (absolute paths, so `evaluate` finds the files later)."""
    if data is None:
        given = [o for o, v in (("--format", data_format), ("--test-data", test_data),
                                ("--sep", sep), ("--columns", columns)) if v is not None]
        if given or header:
            raise _config_error(f"{(given or ['--header'])[0]} describes a file of your own: give --data")
        return {}
    if data_format is None:
        raise _config_error(f"--data needs --format ({V.listing(V.FORMATS)})")
    options = {}
    if sep is not None:
        options["sep"] = sep.encode().decode("unicode_escape")  # '\t' typed as two characters
    if columns is not None:
        options["columns"] = [c.strip() or None for c in columns.split(",")]
    if header:
        options["header"] = True
    fields = {"path": str(data.absolute()), "format": data_format, "options": options or None,
              "test_path": str(test_data.absolute()) if test_data is not None else None}
    if not _given(ctx, "dataset"):
        fields["dataset"] = data.name
    return fields


def _param_keys(pairs: list[str]) -> list[str]:
    return [p.partition("=")[0].strip().replace("-", "_") for p in pairs]


TRAIN_PARAMS = {  # train's options and the model parameters they set
    "dim": "n_factors", "epochs": "epochs", "batch_size": "batch_size", "optimizer": "optimizer",
    "lr": "lr", "reg": "reg", "patience": "patience", "backend": "backend", "device": "device",
    "seed": "seed", "eps": "eps", "adv_reg": "adv_reg", "adv_start": "adv_start_epoch",
}


def _config_error(msg: str):
    from advrec.errors import ConfigError

    return ConfigError(msg)


# ---------------------------------------------------------------------------- evaluate
@app.command()
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="A folder written by `advrec train`.")],
    k: Annotated[list[int], typer.Option("--k", help="Cutoffs (repeat: --k 10 --k 100).")] = [10, 100],  # noqa: B006
    protocol: Annotated[Protocol, typer.Option(help="full = rank against every unseen item; sampled = against --negatives sampled items.")] = Protocol.full,
    negatives: Annotated[int, typer.Option(help="Sampled negatives per test item (sampled protocol).")] = 99,
    dataset: Annotated[str | None, typer.Option(help="Evaluate on another data set's split than the one trained on.")] = None,
    device: Annotated[str | None, typer.Option(help="Device to score on.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for sampled negatives.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object of metrics on stdout.")] = False,
) -> None:
    """Evaluate a saved model on the test part of the split it was trained on."""
    from advrec.data.prepare import DataSpec, prepare
    from advrec.evaluation import Evaluator
    from advrec.models import load_model
    from advrec.models.base import read_manifest

    with _errors():
        manifest = read_manifest(model_dir)
        rec, parts = _load_with_data(model_dir, load_model, prepare, DataSpec, dataset, device)
        ev = Evaluator(parts.train, parts.test, ks=tuple(k), protocol=protocol.value,
                       n_negatives=negatives, seed=seed)
        result = ev.evaluate(rec)
        if json_out:
            print(json.dumps(result.summary))
        else:
            _print_summary({manifest["model"]: result.summary},
                           title=f"{parts.train.name}, test ({result.protocol})")


@app.command()
def attack(
    model_dir: Annotated[Path, typer.Argument(help="A folder written by `advrec train`, of a model that declares parameter blocks (`advrec list models` names them).")],
    method: Annotated[AttackMethod, typer.Option(help="fgsm (one gradient step), random (noise of the same norm), pgd (iterative, projected).")] = AttackMethod.fgsm,
    eps: Annotated[float, typer.Option(help="Perturbation size ε: the L2 norm of every perturbed row (or the L∞ bound).")] = 0.5,
    block: Annotated[str, typer.Option(help="Which parameter block to perturb: both (all of the model's), or one block name the model declares (user, item for bprmf; gmf_user, … for neumf; see `advrec list models`).")] = "both",
    norm: Annotated[Norm, typer.Option(help="l2: ε·g/‖g‖ per row (APR); linf: ε·sign(g) (Goodfellow et al.).")] = Norm.l2,
    steps: Annotated[int, typer.Option(help="pgd: number of steps.")] = 10,
    step_size: Annotated[float | None, typer.Option(help="pgd: step size (default 2.5·ε/steps).")] = None,
    targets: Annotated[str | None, typer.Option(help="Comma-separated raw item ids: a targeted attack that pushes (or nukes) these items.")] = None,
    mode: Annotated[TargetMode, typer.Option(help="Targeted attacks: push the targets up or nuke them down.")] = TargetMode.push,
    k: Annotated[list[int], typer.Option("--k", help="Cutoffs (repeat: --k 10 --k 100).")] = [100],  # noqa: B006
    seed: Annotated[int, typer.Option(help="Seed for the attack's sampled negatives and random noise.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Perturb a trained model's parameters and report metrics before/after with relative
    changes and paired p-values over users (targeted: the targets' hit ratio too)."""
    from advrec.data.prepare import DataSpec, prepare
    from advrec.evaluation import Evaluator, attack_and_evaluate, target_hit_ratio
    from advrec.models import load_model

    with _errors(options={"eps": "--eps", "steps": "--steps", "step_size": "--step-size",
                          "blocks": "--block", "norm": "--norm"}):
        rec, parts = _load_with_data(model_dir, load_model, prepare, DataSpec)
        ev = Evaluator(parts.train, parts.test, ks=tuple(k), metrics=("hr", "ndcg", "auc"),
                       coverage=False)
        options: dict = {"blocks": block, "norm": norm.value, "seed": seed}
        target_ids = None
        if targets:
            raw = [t.strip() for t in targets.split(",") if t.strip()]
            raw_arr = _coerce_ids(raw, parts.train.item_ids)
            target_ids = parts.train.item_index(raw_arr)
            if method == AttackMethod.random:
                raise _config_error("a random perturbation has no targets")
            options.update(targets=target_ids, mode=mode.value)
        if method == AttackMethod.pgd:
            options.update(steps=steps, step_size=step_size)
        outcome = attack_and_evaluate(rec, parts.train, ev, method.value, eps, **options)
        report = {"method": method.value, "eps": eps, "block": block, "norm": norm.value,
                  "before": outcome.before.summary, "after": outcome.after.summary,
                  "relative_change": outcome.change, "p_value": outcome.p_values}
        if target_ids is not None:
            from advrec.attacks import perturbed_scorer

            delta = outcome.perturbation
            report["targets"] = {
                "before": target_hit_ratio(rec, parts.train, target_ids, k=min(k)),
                "after": target_hit_ratio(perturbed_scorer(rec, delta), parts.train,
                                          target_ids, k=min(k))}
        if json_out:
            print(json.dumps(report))
            return
        table = [[m, f"{v:.4f}", f"{outcome.after.summary[m]:.4f}",
                  f"{100 * outcome.change[m]:+.1f}%", f"{outcome.p_values.get(m, float('nan')):.2g}"]
                 for m, v in outcome.before.summary.items()]
        if "targets" in report:
            table += [[key, f"{report['targets']['before'][key]:.4f}",
                       f"{report['targets']['after'][key]:.4f}", "", ""]
                      for key in report["targets"]["before"] if key != "target_pairs"]
        _print_table(f"{method.value} ε={eps} on {block} ({norm.value})",
                     ["metric", "before", "after", "change", "p-value"], table)


def _coerce_ids(raw: list[str], ids):
    """Raw ids typed on the command line, converted to the id map's type (ints stay ints)."""
    import numpy as np

    if np.issubdtype(np.asarray(ids).dtype, np.integer):
        try:
            return np.asarray([int(r) for r in raw], dtype=np.int64)
        except ValueError:
            raise _config_error(f"--targets must be integer item ids here, got {raw}") from None
    return np.asarray(raw)


def _load_with_data(model_dir, load_model, prepare, DataSpec, dataset=None, device=None):
    """A saved model and the split recorded with it (checked to be the same id space)."""
    from advrec.models.base import read_manifest

    manifest = read_manifest(model_dir)
    run = manifest.get("extra", {}).get("run")
    if run is None:
        raise _config_error(f"{model_dir}: the manifest records no data recipe; it was not "
                            f"written by `advrec train`")
    data = dict(run["data"])
    if dataset:
        data["dataset"] = dataset
    parts = prepare(DataSpec(**data))
    rec = load_model(model_dir, device=device)
    if (rec.n_users_, rec.n_items_) != parts.train.shape:
        raise _config_error(f"{model_dir} was trained on {rec.n_users_} users × {rec.n_items_} "
                            f"items, the data has {parts.train.n_users} × {parts.train.n_items}")
    return rec, parts


def _print_table(title: str, head: list[str], rows: list[list[str]], *, left: int = 1,
                 keys: int = 1, fold: tuple[int, ...] = ()) -> None:
    """A table that fits the console, piped or not: the title and a header wrap at their
    spaces, a number is never cut or wrapped (text columns, the first ``left``, and ``fold``
    columns such as paths, wrap instead); when the columns do not fit side by side they go into
    several tables, each repeating the first ``keys`` columns. Cells are plain text; the first
    ``left`` columns are left-aligned, the others right."""
    import textwrap

    fold = tuple(range(left)) + tuple(fold)

    def need(i: int) -> int:
        cell = max((len(r[i]) for r in rows), default=0)
        word = max((len(w) for r in [head, *rows] for w in r[i].split()), default=0)
        return max(word, min(cell, 24)) if i in fold else max(word, cell)

    widths = [need(i) for i in range(len(head))]
    chunks: list[list[int]] = []
    current = list(range(keys))
    for i in range(keys, len(head)):
        if current != list(range(keys)) and sum(widths[j] + 3 for j in [*current, i]) + 1 > out.width:
            chunks.append(current)
            current = list(range(keys))
        current.append(i)
    chunks.append(current)
    for n, cols in enumerate(chunks):
        text = title + ("" if n == 0 else " (continued)")
        table = Table(title=escape("\n".join(textwrap.wrap(text, out.width))))
        for i in cols:
            label = "\n".join(textwrap.wrap(head[i], widths[i], break_long_words=False)) or " "
            table.add_column(escape(label), justify="left" if i < left else "right",
                             no_wrap=i not in fold, overflow="fold", min_width=widths[i])
        for r in rows:
            table.add_row(*(escape(r[i]) for i in cols))
        out.print(table)


def _print_summary(results: dict[str, dict[str, float]], title: str) -> None:
    """One row per metric, one column per model (fits a narrow terminal)."""
    metrics = list(next(iter(results.values())).keys())
    _print_table(title, ["metric", *results],
                 [[m, *(f"{summary.get(m, float('nan')):.4f}" for summary in results.values())]
                  for m in metrics])


# ---------------------------------------------------------------------------- demo
@app.command()
def demo(
    epochs: Annotated[int, typer.Option(help="Epochs of the tutorial's BPR-MF run.")] = 5,
    max_epochs: Annotated[int, typer.Option(help="Epoch limit of the early-stopped run.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """The main job: BPR-MF on the tutorial's movielens-500 (5 epochs, then to convergence with
    early stopping on a validation split) beside ItemPop, evaluated by full ranking @10/@100."""
    import torch

    from advrec.data.prepare import DataSpec, prepare
    from advrec.evaluation import Evaluator
    from advrec.models import BPRMF, ItemPop

    with _errors():
        torch.manual_seed(seed)
        parts = prepare(DataSpec(dataset="movielens-500"))
        fit_part = prepare(DataSpec(dataset="movielens-500", valid="leave-one-out", seed=seed))
        ev = Evaluator(parts.train, parts.test, ks=(10, 100), metrics=("hr", "ndcg", "auc"),
                       coverage=False)
        results, notes = {}, []
        results["ItemPop"] = ev.evaluate(ItemPop().fit(parts.train)).summary
        t0 = time.perf_counter()
        bpr = BPRMF(epochs=epochs, seed=seed).fit(parts.train, progress=not quiet and None)
        notes.append(f"BPR-MF ({epochs} epochs): {time.perf_counter() - t0:.1f} s")
        results[f"BPR-MF {epochs} ep."] = ev.evaluate(bpr).summary
        validator = Evaluator(fit_part.train, fit_part.valid, ks=(100,), metrics=("ndcg",),
                              coverage=False)
        t0 = time.perf_counter()
        best = BPRMF(epochs=max_epochs, patience=10, validate_every=5, seed=seed).fit(
            fit_part.train, validate=lambda m: validator.evaluate(m).summary["ndcg@100"],
            progress=not quiet and None)
        notes.append(f"BPR-MF early-stopped: best epoch {best.best_epoch_} of "
                     f"{len(best.history_)} run, {time.perf_counter() - t0:.1f} s")
        results["BPR-MF early-stopped"] = ev.evaluate(best).summary
        _print_summary(results, title="movielens-500, leave-one-out, full ranking")
        notes.append("the tutorial reports HR@100 0.29, nDCG@100 0.07, AUC 0.82 after 5 epochs")
        for n in notes:
            out.print(n)


@app.command()
def handson(
    out_dir: Annotated[Path, typer.Option("--out", help="The hands-on's experiment folder (results store, models, report.html, results.json, sweep.png, sweep.svg); a re-run resumes there.")] = Path("runs/handson"),
    dataset: Annotated[str, typer.Option(help="Data set (the tutorial uses movielens-500).")] = "movielens-500",
    bpr_epochs: Annotated[int, typer.Option(help="BPR-MF epochs before the first attack (tutorial: 5; paper: 1000).")] = 5,
    apr_epochs: Annotated[int, typer.Option(help="APR epochs, starting from the BPR-MF model (paper: 1000).")] = 100,
    eps: Annotated[float, typer.Option(help="APR's training ε.")] = 0.5,
    adv_reg: Annotated[float, typer.Option(help="APR's λ.")] = 1.0,
    attack_eps: Annotated[float, typer.Option(help="ε of the FGSM attack on each model.")] = 0.5,
    sweep: Annotated[str, typer.Option(help="Comma-separated ε values of the sweep.")] = "0.05,0.1,0.25,0.5,1,2",
    k: Annotated[int, typer.Option(help="Cutoff of HR and nDCG.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    device: Annotated[str | None, typer.Option(help="cpu, cuda … (default: CUDA when present).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the results as one JSON object.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="--out holds another experiment's results: replace them (only the files advrec wrote).")] = False,
) -> None:
    """The tutorial's hands-on: train BPR-MF, attack it with FGSM, train APR from it, attack
    again; then the ε sweep (adversarial vs random, BPR-MF vs APR) as a table and a plot."""
    from advrec.experiments.handson import (
        HandsOnConfig,
        run_handson,
        stage_table,
        sweep_table,
        write_outputs,
    )
    from advrec.outputs import check_dir
    from advrec.validation import check_float

    with _errors(options={"eps": "--eps", "attack_eps": "--attack-eps", "k": "--k"}):
        check_dir(out_dir, "experiment", identity="handson", overwrite=overwrite)
        try:
            sweep_eps = tuple(float(e) for e in sweep.split(",") if e.strip())
        except ValueError:
            raise _config_error(f"--sweep must be comma-separated numbers, got {sweep!r}") from None
        for e in sweep_eps:
            _check_option("--sweep", check_float, e, "eps", low=0, closed="neither")
        _check_option("--attack-eps", check_float, attack_eps, "eps", low=0, closed="neither")
        cfg = HandsOnConfig(dataset=dataset, bpr_epochs=bpr_epochs, apr_epochs=apr_epochs,
                            eps=eps, adv_reg=adv_reg, attack_eps=attack_eps, sweep_eps=sweep_eps,
                            k=k, seed=seed, device=device)
        log = (lambda _m: None) if (quiet or json_out) else (lambda m: err.print(m, highlight=False))
        result = run_handson(cfg, output=out_dir, log=log, overwrite=overwrite,
                             progress=False if quiet else None)
        paths = write_outputs(result, out_dir)
        from advrec.experiments.report import write_report

        paths["report"] = write_report(out_dir)
        if json_out:
            print(json.dumps(result.to_dict()))
            return
        for title, (header, rows) in (
            (f"{dataset}: FGSM ε={attack_eps} on every stage (full ranking @{k})", stage_table(result)),
            (f"relative change of nDCG@{k} under perturbation", sweep_table(result)),
        ):
            _print_table(title, list(header), [list(r) for r in rows])
        out.print(escape(f"plot: {paths['png']} and {paths['svg']}; all numbers: {paths['json']}; "
                         f"report: {paths['report']}"))


# ---------------------------------------------------------------------------- shilling
@app.command()
def shill(
    ctx: typer.Context,
    victims: Annotated[list[str], typer.Argument(help=f"Victims: model names ({V.listing(V.MODELS)}) or folders written by `advrec train` (the model and its hyper-parameters, retrained with the study's seed; their data set unless --dataset).")],
    dataset: Annotated[str, typer.Option(help="Data set (its predefined split, else a seeded 80/20 hold-out).")] = "ml-100k",
    fold: Annotated[str | None, typer.Option(help="Predefined fold, e.g. u1 for ml-100k.")] = None,
    attack: Annotated[list[str], typer.Option("--attack", help=f"Attack (repeat): hand-crafted {V.listing(V.SHILLING_ATTACKS)}; optimised {V.listing(V.POISONING_ATTACKS)}.")] = ["average"],  # noqa: B006
    size: Annotated[list[float], typer.Option("--size", help="Attack size: fake users as a fraction of real users (repeat).")] = [0.05],  # noqa: B006
    filler: Annotated[float | None, typer.Option(help="Filler size: a fraction of the items (< 1) or a count (>= 1); default 0.03 for hand-crafted attacks, a real user's average profile for the optimised ones.")] = None,
    attack_param: Annotated[list[str], typer.Option("--attack-param", help="A hyper-parameter of the optimised attacks as KEY=VALUE (repeat), e.g. --attack-param surrogate=wmf; `advrec list attacks` shows them.")] = [],  # noqa: B006
    profiles: Annotated[list[Path], typer.Option("--profiles", help="Also inject the fake profiles of this file (repeat): TAB-separated user, item[, rating] with a header, as --save writes.")] = [],  # noqa: B006
    save: Annotated[Path | None, typer.Option(help="Write each attack's fake profiles into this new folder (TAB-separated, one file per attack and size).")] = None,
    targets: Annotated[str | None, typer.Option(help="Comma-separated raw item ids to push/nuke (default: chosen by --target-strategy).")] = None,
    n_targets: Annotated[int, typer.Option(help="How many target items to choose.")] = 5,
    target_strategy: Annotated[str, typer.Option(help="random, popular, unpopular or quantile (a popularity band).")] = "quantile",
    intent: Annotated[Intent | None, typer.Option(help="push or nuke (default: each attack's own).")] = None,
    implicit: Annotated[bool | None, typer.Option("--implicit/--explicit", help="Implicit (0/1) or rating profiles (default: as the data).")] = None,
    rank_by: Annotated[str, typer.Option(help="Rank the targets by the model's top-N scores ('score') or its predicted ratings ('predict', rating models).")] = "score",
    k: Annotated[int, typer.Option(help="Cutoff of the target hit ratio.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    plot: Annotated[Path | None, typer.Option(help="Write hit ratio@k vs attack size to this PNG/SVG/PDF.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="The study's experiment folder (results store, models, report.html); a re-run resumes there.")] = Path("runs/shill"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a --plot file advrec wrote before, or another experiment's results at --out (only advrec's files).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Inject fake profiles (hand-crafted, optimised against a surrogate, or from a file),
    retrain each victim, and report how far the target items moved (hit ratio@k and mean rank,
    prediction shift, paired p-values, collateral). A preset: the study runs as an experiment
    in --out (`advrec results` / `report` work on it)."""
    from advrec.experiments.shilling import (
        PRESET,
        plot_hit_ratio_vs_size,
        run_shilling_preset,
        shilling_experiment,
    )
    from advrec.outputs import check_dir, check_new_file

    with _errors():
        if plot is not None:
            _check_option("--plot", check_new_file, plot, overwrite)
        if save is not None:
            _check_option("--save", check_dir, save, "fake-profile")
        check_dir(out_dir, "experiment", identity=PRESET, overwrite=overwrite)
        raw_targets = None
        if targets:
            raw_targets = [t.strip() for t in targets.split(",") if t.strip()]
            raw_targets = [int(t) if t.lstrip("-").isdigit() else t for t in raw_targets]
        log = (lambda _m: None) if (json_out or quiet) else (lambda m: err.print(escape(m)))
        count = filler is not None and filler >= 1 and float(filler).is_integer()
        entries, recipe = _victims(victims)
        params = _key_values(attack_param, "--attack-param", "", None)
        experiment = shilling_experiment(
            dataset, entries, attack, sizes=size, filler=int(filler) if count else filler,
            attack_params=params, profile_files=[str(p) for p in profiles],
            n_targets=n_targets, target_strategy=target_strategy, k=k, seed=seed,
            output=out_dir, targets=raw_targets, fold=fold,
            intent=intent.value if intent else None, implicit=implicit, rank_by=rank_by,
            data=None if _given(ctx, "dataset") or _given(ctx, "fold") else recipe)
        rows = run_shilling_preset(experiment, log=log, overwrite=overwrite,
                                   progress=False if quiet else None)
        from advrec.experiments.report import write_report

        report_path = write_report(out_dir)
        if plot is not None:
            plot_hit_ratio_vs_size(rows, plot, k=k, overwrite=overwrite)
        if save is not None:
            from advrec.experiments.shilling import save_profiles_of

            for r, path in zip(rows, save_profiles_of(rows, out_dir, save), strict=True):
                r["saved_profiles"] = str(path)
        if json_out:
            print(json.dumps(rows, default=str))
            return
        def shift(r) -> str:  # rating models only
            v = r.get("prediction_shift")
            return "—" if v is None else f"{v:+.3f}"

        _print_table(
            f"{experiment.data.dataset}: the targets before → after the attack",
            ["victim", "attack", "size", f"hit ratio@{k}", "p", "mean rank", "rating shift"],
            [[str(r["victim"]), str(r.get("attack", "")), f"{r.get('size', float('nan')):g}",
              f"{r[f'hr@{k}_before']:.4f} → {r[f'hr@{k}_after']:.4f}", f"{r[f'hr@{k}_p']:.2g}",
              f"{r.get('mean_rank_before', float('nan')):.0f} → "
              f"{r.get('mean_rank_after', float('nan')):.0f}", shift(r)] for r in rows],
            left=2, keys=2)
        if plot is not None:
            out.print(f"plot: {escape(str(plot))}")
        out.print(f"report: {escape(str(report_path))}")


def _victims(victims: list[str]) -> tuple[list[str | dict], dict | None]:
    """Victim arguments as model entries: a name as is; a model folder as its model, its
    hyper-parameters (not its seed or device) and its folder's name as the label. Also the data
    recipe the folders were trained on (None without folders; they must agree)."""
    from advrec.models.base import read_manifest

    entries: list[str | dict] = []
    recipe, source = None, None
    for v in victims:
        folder = Path(v)
        if not (folder / "manifest.json").is_file():
            if folder.exists() or "/" in v or "\\" in v:
                raise _config_error(f"{v}: not a model folder written by `advrec train` (no "
                                    f"manifest.json) nor a model name")
            entries.append(v)
            continue
        manifest = read_manifest(folder)
        params = {k: x for k, x in manifest.get("params", {}).items() if k not in ("seed", "device")}
        entries.append({"name": manifest["model"], "params": params,
                        "label": folder.resolve().name})
        data = (manifest.get("extra", {}).get("run") or {}).get("data")
        if data is not None:
            if recipe is not None and data != recipe:
                raise _config_error(f"{v} and {source} were trained on different data; give "
                                    f"--dataset to study them on one")
            recipe, source = data, v
    return entries, recipe


# ---------------------------------------------------------------------------- detection
@app.command()
def detect(
    dataset: Annotated[str, typer.Option(help="Data set with ratings (its predefined split, else a seeded 80/20 hold-out).")] = "ml-100k",
    fold: Annotated[str | None, typer.Option(help="Predefined fold, e.g. u1 for ml-100k.")] = None,
    attack: Annotated[list[str], typer.Option("--attack", help="Held-out test attack types (repeat); detectors train on the others.")] = ["random", "average", "bandwagon", "segment", "love_hate"],  # noqa: B006
    size: Annotated[float, typer.Option(help="Test attack size (fraction of real users).")] = 0.05,
    filler: Annotated[float, typer.Option(help="Test filler size (fraction of items).")] = 0.05,
    detector: Annotated[list[str], typer.Option("--detector", help=f"Detector (repeat): {V.listing(V.CLASSIFIERS)} (supervised), {V.listing(V.DETECTORS[len(V.CLASSIFIERS):])} (unsupervised).")] = ["svm", "pca", "rule"],  # noqa: B006
    victim: Annotated[str | None, typer.Option(help=f"Victim to retrain with no defence / after filtering / with perfect removal: {V.listing(V.MODELS)}, or 'none' to skip.")] = "mf",
    n_targets: Annotated[int, typer.Option(help="Target items per attack.")] = 3,
    k: Annotated[int, typer.Option(help="Cutoff of the hit ratios.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    plot: Annotated[Path | None, typer.Option(help="Folder for roc.png, pr.png (per held-out attack and detector) and features.png (real vs fake feature distributions).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="The study's experiment folder (results store, models, report.html); a re-run resumes there.")] = Path("runs/detect"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier --plot folder, or another experiment's results at --out (only the files advrec wrote).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Detect injected fake profiles without leaking labels (leave-one-attack-type-out):
    precision/recall/F1/ROC-AUC per held-out attack and detector, and what removing the flagged
    users does to the victim's target hit ratio and accuracy. A preset: the study runs as an
    experiment in --out (`advrec results` / `report` work on it)."""
    from advrec.experiments.detection import PRESET, detection_experiment, run_detection_preset
    from advrec.outputs import check_dir, claim_dir

    with _errors():
        from advrec.validation import check_choice

        victim = _check_option("--victim", check_choice, victim, "victim", (*V.MODELS, "none"))
        detector = [_check_option("--detector", check_choice, d, "detector", V.DETECTORS)
                    for d in detector]
        if plot is not None:
            check_dir(plot, "plots", overwrite=overwrite)
        check_dir(out_dir, "experiment", identity=PRESET, overwrite=overwrite)
        experiment = detection_experiment(
            dataset, attack, size, filler, output=out_dir, detectors=detector,
            victim=None if victim in (None, "none") else victim, n_targets=n_targets, k=k,
            fold=fold, seed=seed)
        if plot is not None:
            claim_dir(plot, "plots", overwrite=overwrite).record("roc.png", "pr.png",
                                                                 "features.png")
        rows = run_detection_preset(experiment, plots=plot, overwrite=overwrite,
                                    progress=False if quiet else None)
        from advrec.experiments.report import write_report

        report_path = write_report(out_dir)
        if json_out:
            print(json.dumps(rows, default=str))
            return
        cols = ["held_out", "detector", "precision", "recall", "f1", "roc_auc"]
        victim_cols = [c for c in (f"target_hr@{k}_attacked", f"target_hr@{k}_filtered",
                                   f"target_hr@{k}_clean") if rows and c in rows[0]]
        _print_table(f"{dataset}: detection of held-out attacks (size {size:g}, filler {filler:g})",
                     [c.replace("_", " ") for c in cols + victim_cols],
                     [[str(r.get(c, "")) if c in cols[:2] else f"{r.get(c, float('nan')):.3f}"
                       for c in cols + victim_cols] for r in rows], left=2, keys=2)
        if plot is not None:
            out.print(f"plots: {escape(str(plot))}/roc.png, pr.png, features.png")
        out.print(f"report: {escape(str(report_path))}")


# ---------------------------------------------------------------------------- experiments
MAX_CELLS_HELP = "Refuse a grid of more cells than this (checked before anything is expanded)."


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="An experiment YAML file.")],
    max_cells: Annotated[int, typer.Option(help=MAX_CELLS_HELP, min=1)] = 10_000,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Check as `run --overwrite` would (the output folder may hold another experiment).")] = False,
) -> None:
    """Check an experiment file without running it (everything `run` checks before its first
    cell); print how many models and cells it makes."""
    from advrec.experiments.config import load_config
    from advrec.experiments.runner import preflight

    with _errors():
        config = load_config(file)
        the_plan = preflight(config, max_cells=max_cells, source=str(file), overwrite=overwrite)
        out.print(f"{escape(str(file))}: valid. {len(the_plan.jobs)} model(s) to train, "
                  f"{len(the_plan.cells)} cell(s); results go to {escape(str(config.output))}")


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="An experiment YAML file.")],
    executor: Annotated[Executor | None, typer.Option(help="local (default) or ray; overrides the file.")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start a local Ray instance).")] = None,
    output: Annotated[Path | None, typer.Option(help="Results folder (overrides the file's `output`).")] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write the HTML report at the end.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    max_cells: Annotated[int, typer.Option(help=MAX_CELLS_HELP, min=1)] = 10_000,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="The output folder holds another experiment's results: replace them (only the files advrec wrote).")] = False,
) -> None:
    """Run every unfinished cell of an experiment (re-run to resume; Ctrl-C stops cleanly).
    The whole file is checked before the first cell runs."""
    from advrec.experiments.config import load_config
    from advrec.experiments.runner import run_experiment

    with _errors():
        config = load_config(file)
        if output is not None:
            config = config.model_copy(update={"output": str(output)})
        try:
            summary = run_experiment(config, executor=executor.value if executor else None,
                                     address=address, progress=False if quiet else None,
                                     max_cells=max_cells, overwrite=overwrite, source=str(file))
        except KeyboardInterrupt:
            err.print(f"interrupted: finished cells are saved in {escape(str(config.output))}; "
                      f"run the same command again to resume")
            raise typer.Exit(130) from None
        out.print(f"{summary.done_now} cell(s) run, {summary.done_before} already done, "
                  f"{summary.models_trained} model(s) trained, {summary.seconds:.1f} s")
        if report:
            from advrec.experiments.report import write_report

            path = write_report(summary.output)
            out.print(f"report: {escape(str(path))}")
        else:
            out.print(f"results: {escape(str(summary.output))}")


@app.command()
def results(
    folder: Annotated[Path, typer.Argument(help="An experiment's results folder.")],
    group_by: Annotated[list[str] | None, typer.Option("--group-by", help="Columns to average over seeds by (repeat); default model_label, attack, eps, plus size, filler and defense when shilling cells exist.")] = None,
    where: Annotated[list[str], typer.Option("--where", help="Keep rows with COLUMN=VALUE (repeat), e.g. --where attack=fgsm.")] = [],  # noqa: B006
    csv: Annotated[Path | None, typer.Option(help="Also write the (ungrouped, filtered) rows to this CSV file.")] = None,
    parquet: Annotated[Path | None, typer.Option(help="Also write them to this Parquet file.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the grouped table as JSON records.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a --csv/--parquet file advrec wrote before.")] = False,
) -> None:
    """Print the results table of an experiment (mean over seeds) and export it."""
    from advrec.experiments.store import ResultsStore
    from advrec.outputs import check_new_file

    with _errors():
        if csv is not None and parquet is not None and csv.absolute() == parquet.absolute():
            raise _config_error(f"--csv and --parquet name the same file {csv}")
        for option, path in (("--csv", csv), ("--parquet", parquet)):
            if path is not None:
                _check_option(option, check_new_file, path, overwrite)
        with ResultsStore(folder, read_only=True) as store:
            frame = store.frame()
        if frame.empty:
            raise _config_error(f"{folder}: no finished cells yet")
        for cond in where:
            col, sep, value = cond.partition("=")
            if not sep or col not in frame.columns:
                raise _config_error(f"--where {cond!r}: expected COLUMN=VALUE with a column in "
                                    f"{', '.join(frame.columns)}")
            frame = frame[frame[col].astype(str) == value]
        for path, writer in ((csv, "to_csv"), (parquet, "to_parquet")):
            if path is not None:
                _write_frame(frame, path, writer, overwrite)
        if not group_by:
            shilling = "size" in frame.columns and frame["size"].notna().any()
            group_by = ["model_label", *(["scenario"] if shilling else []), "attack", "eps"] + [
                c for c in ("size", "filler", "defense")
                if c in frame.columns and frame[c].notna().any()]
        unknown = [g for g in group_by if g not in frame.columns]
        if unknown:
            raise _config_error(f"--group-by {unknown}: not columns; choose from "
                                f"{', '.join(frame.columns)}")
        metric_cols = [c for c in frame.columns if ("@" in c or c == "auc"
                       or c.startswith("detect_")) and frame[c].notna().any()]
        grouped = (frame.groupby(group_by, sort=False, dropna=False)
                   [metric_cols].agg(["mean", "std", "count"]))
        if json_out:
            flat = grouped.copy()
            flat.columns = [f"{m}_{s}" for m, s in flat.columns]
            print(flat.reset_index().to_json(orient="records"))
            return
        table = []
        for key, row in grouped.iterrows():
            key = key if isinstance(key, tuple) else (key,)
            n = int(row[(metric_cols[0], "count")])
            cells = [f"{row[(m, 'mean')]:.4f}" + (f"±{row[(m, 'std')]:.4f}" if n > 1 else "")
                     for m in metric_cols]
            table.append([*("—" if k != k else str(k) for k in key), *cells, str(n)])
        _print_table(f"{folder}: mean ± std over seeds", [*group_by, *metric_cols, "n"], table,
                     left=len(group_by), keys=min(len(group_by), 2))


def _write_frame(frame, path: Path, writer: str, overwrite: bool) -> None:
    """Write a DataFrame atomically (temporary file, then rename)."""
    from advrec.outputs import write_file

    if writer == "to_parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise _config_error("Parquet export needs pyarrow: pip install pyarrow") from None
        write_file(path, lambda tmp: frame.to_parquet(tmp, index=False), overwrite)
    else:
        write_file(path, lambda tmp: frame.to_csv(tmp, index=False), overwrite)


@app.command("report")
def report_command(
    folder: Annotated[Path, typer.Argument(help="An experiment's results folder.")],
    out_file: Annotated[Path | None, typer.Option("--out", help="HTML file to write (default: FOLDER/report.html, refreshed on each call).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an --out file advrec wrote before.")] = False,
) -> None:
    """Write the experiment's self-contained HTML report (tables, significance, plots)."""
    from advrec.experiments.report import write_report

    with _errors():
        out.print(f"report: {escape(str(write_report(folder, out_file, overwrite=overwrite)))}")


def main() -> None:
    """Entry point (also used by ``python -m advrec``)."""
    app()


if __name__ == "__main__":
    sys.exit(main())
