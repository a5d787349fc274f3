"""Where advrec writes, and the promise that it never destroys what it did not write.

- :func:`atomic_write`: the one atomic writer (a temporary file in the target's folder, then a
  rename), so a reader never sees half a file; the file's mode follows the user's umask.
- :func:`claim_dir` / :class:`OutputDir`: a folder advrec writes (a saved model, an experiment,
  a hands-on run, plots). advrec writes only into a new or empty folder, or into one it wrote
  itself, which it recognises by its own marker file (``.advrec-output.json``, listing what it
  wrote there). Replacing an earlier output needs ``overwrite=True`` (``--overwrite``), and then
  only the paths the marker lists are removed; anything else in the folder stays.
- :func:`write_file`: a single file the user names (``--csv``, ``report --out``, ``--plot``):
  an existing file is replaced only with ``overwrite=True`` and only if advrec wrote it, which
  it knows from the sha256 it recorded then (in ``$ADVREC_STATE_DIR/written-files.json``).

Any layer may use this module; it depends on the standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from advrec.errors import OutputError

MARKER = ".advrec-output.json"
MARKER_FORMAT = "advrec-output"
STATE_ENV = "ADVREC_STATE_DIR"
LEDGER_NAME = "written-files.json"
LEDGER_LIMIT = 5000  # remembered files; the oldest are forgotten first

Writer = Callable[[Path], Any]


# ---------------------------------------------------------------------------- files
def file_mode() -> int:
    """The mode a new file gets under the current umask (what ``open(..., "w")`` would give)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def atomic_write(path: str | os.PathLike, write: Writer) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it into place.

    The folder must exist. On any failure the temporary file is removed and ``path`` is as it
    was. Refuses a ``path`` that is a folder.
    """
    path = _file_target(path)
    parent = path.parent
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write here ({_os_reason(exc)})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, file_mode())
        write(tmp)
        os.chmod(tmp, file_mode())  # writers that recreate the file keep the umask's mode too
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({_os_reason(exc)})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _file_target(path: str | os.PathLike) -> Path:
    """``path`` as a file to write: not a folder, in a folder that exists."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; expected a file name")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist")
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- single files
def _ledger_path() -> Path:
    env = os.environ.get(STATE_ENV)
    if env:
        return Path(env).expanduser() / LEDGER_NAME
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "advrec" / LEDGER_NAME


def _read_ledger() -> dict[str, str]:
    try:
        data = json.loads(_ledger_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(path: Path) -> None:
    """Record ``path``'s sha256 as written by advrec (best effort: an unwritable state folder
    only means a later ``--overwrite`` of that file is refused)."""
    ledger = _read_ledger()
    key = str(path.resolve())
    ledger.pop(key, None)
    ledger[key] = sha256_of(path)
    if len(ledger) > LEDGER_LIMIT:
        ledger = dict(list(ledger.items())[-LEDGER_LIMIT:])
    where = _ledger_path()
    with contextlib.suppress(OSError, OutputError):
        where.parent.mkdir(parents=True, exist_ok=True)
        write_text(where, json.dumps(ledger))


def written_by_advrec(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds exactly the bytes advrec recorded writing there."""
    path = Path(path)
    recorded = _read_ledger().get(str(path.resolve()))
    return recorded is not None and path.is_file() and sha256_of(path) == recorded


def check_new_file(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse ``path`` unless it can be written: absent, or (with ``overwrite``) a file advrec
    wrote and nobody changed since. Checked before any work, so nothing runs for nothing."""
    path = _file_target(path)
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"{path}: folder {path.parent} is not writable")
    if os.path.lexists(path):
        if not overwrite:
            raise OutputError(f"{path} exists; advrec does not replace it (pass --overwrite to "
                              f"replace a file advrec wrote)")
        if path.is_symlink() or not written_by_advrec(path):
            raise OutputError(f"{path} was not written by advrec (or was changed since); "
                              f"refusing to replace it: remove it yourself or choose another path")
    return path


def write_file(path: str | os.PathLike, write: Writer, overwrite: bool = False) -> Path:
    """Write a single file the user named: :func:`check_new_file`, then :func:`atomic_write`,
    then remember its hash so a later ``overwrite`` may replace it."""
    path = check_new_file(path, overwrite)
    atomic_write(path, write)
    _remember(path)
    return path


# ---------------------------------------------------------------------------- folders
def read_marker(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The marker of a folder advrec wrote (``None`` if there is none or it is not advrec's).

    Folders written before markers existed are recognised by advrec's own manifests: a saved
    model by its ``manifest.json`` (format ``advrec-model``), an experiment by its
    ``experiment.json`` beside ``results.duckdb``.
    """
    folder = Path(folder)
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return _legacy_marker(folder)
    if (not isinstance(data, dict) or data.get("format") != MARKER_FORMAT
            or not isinstance(data.get("kind"), str)
            or not isinstance(data.get("entries"), list)
            or not all(isinstance(e, str) for e in data["entries"])):
        return None
    return data


def _legacy_marker(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if isinstance(manifest, dict) and manifest.get("format") == "advrec-model":
            return {"format": MARKER_FORMAT, "kind": "model", "identity": None,
                    "entries": ["manifest.json", "state.safetensors"]}
    except (OSError, ValueError):
        pass
    try:
        config = json.loads((folder / "experiment.json").read_text(encoding="utf-8"))
        if isinstance(config, dict) and "name" in config and (folder / "results.duckdb").is_file():
            return {"format": MARKER_FORMAT, "kind": "experiment", "identity": config["name"],
                    "entries": ["experiment.json", "results.duckdb", "results.duckdb.wal",
                                "report.html", "models"]}
    except (OSError, ValueError):
        pass
    parent = _legacy_marker(folder.parent) if folder.name == "models" else None
    if parent is not None and parent["kind"] == "experiment" and all(
            c.is_dir() and _legacy_marker(c) is not None for c in folder.iterdir()):
        return {"format": MARKER_FORMAT, "kind": "models", "identity": parent["identity"],
                "entries": []}
    return None


KIND_WORDS = {"model": "a saved model", "experiment": "an experiment's results",
              "handson": "a hands-on run", "plots": "plots", "dataset": "a downloaded data set",
              "models": "an experiment's trained models"}


def _describe(marker: dict[str, Any]) -> str:
    what = KIND_WORDS.get(marker["kind"], f"an advrec {marker['kind']} output")
    if marker.get("identity") is not None:
        what += f" ({marker['identity']!r})"
    return what


def check_dir(path: str | os.PathLike, kind: str, *, identity: str | None = None,
              overwrite: bool = False) -> dict[str, Any] | None:
    """Refuse ``path`` as an output folder of ``kind`` unless advrec may write there; returns
    its marker (``None`` for a new or empty folder). Makes no change on disk.

    Allowed: a missing path; an empty folder; a folder advrec wrote as the same ``kind`` and
    ``identity`` when ``identity`` is given (an experiment resuming in its own folder); any other
    folder advrec wrote as ``kind`` with ``overwrite``.
    """
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise OutputError(f"{path} exists and is not a folder; advrec never replaces a file it "
                          f"did not write: choose a new folder name")
    if path.is_symlink():
        raise OutputError(f"{path} is a symbolic link; give the real folder")
    if not path.exists():
        ancestor = next((p for p in path.absolute().parents if p.exists()), None)
        if ancestor is not None and (not ancestor.is_dir() or not os.access(ancestor, os.W_OK)):
            raise OutputError(f"{path}: cannot create it, {ancestor} is not a writable folder")
        return None
    if Path.cwd().resolve().is_relative_to(path.resolve()):
        raise OutputError(f"{path} is the current folder (or holds it); advrec writes its "
                          f"outputs into a folder of their own: give a new folder name")
    if not os.access(path, os.W_OK):
        raise OutputError(f"{path}: folder is not writable")
    marker = read_marker(path)
    if marker is None:
        if any(path.iterdir()):
            raise OutputError(f"{path} is a folder advrec did not write, and it is not empty; "
                              f"advrec never writes into or deletes such a folder: choose a new "
                              f"or empty folder")
        return None
    if marker["kind"] != kind:
        raise OutputError(f"{path} holds {_describe(marker)}, not {KIND_WORDS.get(kind, kind)}; "
                          f"choose another folder")
    if identity is not None and marker.get("identity") == identity:
        return marker
    if not overwrite:
        raise OutputError(f"{path} already holds {_describe(marker)}; pass --overwrite to "
                          f"replace it (only the files advrec wrote there are removed)")
    return marker


class OutputDir:
    """A folder advrec has claimed: write files into it atomically and record each one."""

    def __init__(self, path: Path, kind: str, identity: str | None):
        self.path, self.kind, self.identity = path, kind, identity

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def entries(self) -> list[str]:
        marker = read_marker(self.path)
        return list(marker["entries"]) if marker else []

    def record(self, *names: str) -> None:
        """Add ``names`` (files or sub-folders directly in this folder) to the marker."""
        entries = self.entries()
        new = [n for n in names if n not in entries]
        if new or not (self.path / MARKER).is_file():
            _write_marker(self.path, self.kind, self.identity, entries + new)

    def write(self, name: str, write: Writer) -> Path:
        """Write file ``name`` atomically (replacing advrec's previous one) and record it."""
        self.record(name)
        return atomic_write(self.path / name, write)

    def write_text(self, name: str, text: str) -> Path:
        return self.write(name, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def subdir(self, name: str, kind: str, identity: str | None = None,
               overwrite: bool = False) -> OutputDir:
        """Claim sub-folder ``name`` (recorded here, with a marker of its own)."""
        self.record(name)
        return claim_dir(self.path / name, kind, identity=identity, overwrite=overwrite)


def _write_marker(path: Path, kind: str, identity: str | None, entries: list[str]) -> None:
    marker = {"format": MARKER_FORMAT, "kind": kind, "identity": identity, "entries": entries}
    write_text(path / MARKER, json.dumps(marker, indent=1))


def claim_dir(path: str | os.PathLike, kind: str, *, identity: str | None = None,
              overwrite: bool = False) -> OutputDir:
    """:func:`check_dir`, then create the folder (with its parents) and its marker. With
    ``overwrite`` an earlier output of ``kind`` is removed first, as far as advrec wrote it."""
    path = Path(path)
    marker = check_dir(path, kind, identity=identity, overwrite=overwrite)
    resuming = marker is not None and identity is not None and marker.get("identity") == identity
    if marker is not None and not resuming:
        remove_output(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the folder ({_os_reason(exc)})") from None
    out = OutputDir(path, kind, identity)
    if not (path / MARKER).is_file():
        _write_marker(path, kind, identity, marker["entries"] if resuming else [])
    return out


def remove_output(path: str | os.PathLike) -> None:
    """Remove what advrec wrote in folder ``path``: the entries its marker lists (sub-folders
    through their own markers), then the marker, then the folder if nothing else is left."""
    path = Path(path)
    marker = read_marker(path)
    if marker is None:
        raise OutputError(f"{path}: not a folder advrec wrote; refusing to remove anything")
    for name in marker["entries"]:
        _remove_entry(path / name)
    for child in _marked_children(path):
        remove_output(child)
    (path / MARKER).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.rmdir()  # only when empty: files advrec did not write stay, and so does the folder


def _marked_children(path: Path) -> Iterable[Path]:
    if read_marker(path) is None or not path.is_dir():
        return []
    return [c for c in path.iterdir() if c.is_dir() and not c.is_symlink()
            and (c / MARKER).is_file()]


def _remove_entry(p: Path) -> None:
    if p.is_symlink() or p.is_file():
        p.unlink(missing_ok=True)
    elif p.is_dir() and read_marker(p) is not None:
        remove_output(p)
    # a sub-folder without a marker of its own is left alone: advrec cannot tell it wrote it
