"""The results store: one DuckDB file next to the experiment, one row per finished cell.

A row is inserted in one transaction, complete, or not at all, so a crash or kill never leaves a
half-written result; re-running skips the cells whose row exists. Only this module writes results.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from advrec._lazy import lazy
from advrec.errors import ConfigError
from advrec.experiments.cells import CellResult

pd = lazy("pandas")

SCHEMA_VERSION = 3
DB_NAME = "results.duckdb"
JSON_COLUMNS = ("attack_config", "config", "metrics", "per_user", "history", "timings",
                "versions", "detection", "measures")
# Columns added since schema 1, with their types: a schema-1 store gains them (empty) on opening.
DETECTION_FIGURES = ("precision", "recall", "f1", "roc_auc", "pr_auc", "removed", "removed_real")
ADDED_IN_2 = {"defense": "VARCHAR", "detection": "VARCHAR"}
LEGACY_SHILLING_PREFIX = "shill:"  # schema ≤ 2 wrote shilling cells' attack as shill:<name>
COLUMNS = {
    "key": "VARCHAR PRIMARY KEY",
    "experiment": "VARCHAR",
    "model_key": "VARCHAR",
    "model_label": "VARCHAR",
    "model_name": "VARCHAR",
    "seed": "INTEGER",
    "scenario": "VARCHAR",
    "attack": "VARCHAR",
    "eps": "DOUBLE",
    "attack_config": "VARCHAR",
    "config": "VARCHAR",
    "metrics": "VARCHAR",
    "per_user": "VARCHAR",
    "history": "VARCHAR",
    "timings": "VARCHAR",
    "versions": "VARCHAR",
    "defense": "VARCHAR",
    "detection": "VARCHAR",
    "measures": "VARCHAR",
    "status": "VARCHAR",
    "created": "TIMESTAMP",
}


class ResultsStore:
    """Rows of an experiment's results in ``<folder>/results.duckdb``."""

    def __init__(self, folder: str | os.PathLike, read_only: bool = False):
        import duckdb

        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        if read_only and not self.path.is_file():
            raise ConfigError(f"{self.folder}: no results here (no {DB_NAME}); run the "
                              f"experiment first")
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise ConfigError(f"{self.path} is locked by another process (another run of "
                                  f"this experiment?); wait for it or stop it") from None
            raise ConfigError(f"{self.path}: cannot open the results database ({exc})") from None
        except duckdb.Error as exc:
            raise ConfigError(f"{self.path}: not a readable results database ({exc})") from None
        if not read_only:
            self._create()
            self._migrate()
        self._check_version(readable=("1", "2") if read_only else ())

    # ------------------------------------------------------------------ schema
    def _create(self) -> None:
        cols = ", ".join(f"{k} {v}" for k, v in COLUMNS.items())
        self.con.execute(f"CREATE TABLE IF NOT EXISTS cells ({cols})")
        self.con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        self.con.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                         [str(SCHEMA_VERSION)])

    def _migrate(self) -> None:
        """Schema 1 → 2: the shilling columns (``defense``, ``detection``), empty for old rows.
        Schema 2 → 3: the ``scenario`` column; shilling cells' attack loses its ``shill:``."""
        row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or row[0] not in ("1", "2"):
            return
        self.con.execute("BEGIN TRANSACTION")
        for name, kind in ADDED_IN_2.items():
            self.con.execute(f"ALTER TABLE cells ADD COLUMN IF NOT EXISTS {name} {kind}")
        self.con.execute("ALTER TABLE cells ADD COLUMN IF NOT EXISTS scenario VARCHAR")
        self.con.execute("ALTER TABLE cells ADD COLUMN IF NOT EXISTS measures VARCHAR")
        self.con.execute(
            "UPDATE cells SET scenario = CASE WHEN attack = 'none' THEN 'clean' "
            "WHEN starts_with(attack, ?) THEN 'shilling' ELSE 'perturbation' END, "
            "attack = CASE WHEN starts_with(attack, ?) THEN substr(attack, ?) ELSE attack END",
            [LEGACY_SHILLING_PREFIX, LEGACY_SHILLING_PREFIX, len(LEGACY_SHILLING_PREFIX) + 1])
        self.con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                         [str(SCHEMA_VERSION)])
        self.con.execute("COMMIT")

    def _check_version(self, readable: tuple[str, ...] = ()) -> None:
        try:
            row = self.con.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except Exception:
            row = None
        if row is None:
            raise ConfigError(f"{self.path}: not an advrec results database (no schema version)")
        if row[0] in readable:  # an older schema read as is: its missing columns read as None
            return
        if int(row[0]) != SCHEMA_VERSION:
            raise ConfigError(f"{self.path} was written by an incompatible advrec (results schema "
                              f"{row[0]}, this version reads {SCHEMA_VERSION}); use a new output "
                              f"folder or the advrec version that wrote it")

    # ------------------------------------------------------------------ writing
    def done_keys(self) -> set[str]:
        return {r[0] for r in self.con.execute(
            "SELECT key FROM cells WHERE status = 'done'").fetchall()}

    def write(self, result: CellResult) -> None:
        """Insert one finished cell, all columns at once (a transaction: all or nothing)."""
        if not isinstance(result, CellResult):
            raise TypeError(f"the store writes CellResult objects, got {type(result).__name__}")
        values = result.to_row()
        values["status"] = "done"
        values["created"] = datetime.now(timezone.utc).replace(tzinfo=None)
        for c in JSON_COLUMNS:
            values[c] = json.dumps(values[c], default=_json_default)
        names = list(COLUMNS)
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(f"INSERT OR REPLACE INTO cells ({', '.join(names)}) VALUES "
                             f"({', '.join('?' * len(names))})", [values[n] for n in names])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ reading
    def rows(self, per_user: bool = True) -> list[dict[str, Any]]:
        """Every finished cell as a dict, JSON columns decoded, oldest first."""
        present = {r[0] for r in self.con.execute("SELECT name FROM pragma_table_info('cells')")
                   .fetchall()}
        cols = [c for c in COLUMNS if (per_user or c != "per_user") and c in present]
        result = self.con.execute(
            f"SELECT {', '.join(cols)} FROM cells WHERE status = 'done' ORDER BY created, key")
        out = []
        for rec in result.fetchall():
            row = dict.fromkeys((*ADDED_IN_2, "measures"))
            row.update(zip(cols, rec, strict=True))
            for c in JSON_COLUMNS:
                if c in row and row[c] is not None:
                    row[c] = json.loads(row[c])
            if "scenario" not in present:  # an older schema read as is
                row.update(_scenario_of(row["attack"]))
            out.append(row)
        return out

    def frame(self) -> pd.DataFrame:
        """One row per cell, one column per metric (``metrics`` flattened), no per-user values."""
        rows = self.rows(per_user=False)
        flat = []
        for r in rows:
            base = {k: r[k] for k in ("experiment", "model_label", "model_name", "seed",
                                      "scenario", "attack", "eps", "defense", "key",
                                      "model_key")}
            shilling = r["attack_config"] or {}
            base.update({k: shilling.get(k) for k in ("size", "filler")})
            base.update(r["metrics"])
            detection = r.get("detection") or {}
            base.update({f"detect_{k}": v for k, v in detection.items()
                         if k in DETECTION_FIGURES})
            flat.append(base)
        return pd.DataFrame(flat)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _scenario_of(attack: str) -> dict[str, str]:
    """The scenario and attack name of a row of schema 1 or 2."""
    if attack == "none":
        return {"scenario": "clean", "attack": attack}
    if attack.startswith(LEGACY_SHILLING_PREFIX):
        return {"scenario": "shilling", "attack": attack.removeprefix(LEGACY_SHILLING_PREFIX)}
    return {"scenario": "perturbation", "attack": attack}


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)
