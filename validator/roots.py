"""Path confinement of the Validator service: every path a request names is checked here
before anything reads or writes it.

- A path must be a plain string: no NUL byte, at most :data:`MAX_PATH` characters in all and
  :data:`MAX_COMPONENT` bytes per component (otherwise :class:`RequestError` INVALID_ARGUMENT).
  Relative paths are taken relative to the first data root (inputs) or the output root
  (``out_dir``).
- It is resolved, symlinks followed (:meth:`pathlib.Path.resolve`), and must then lie inside one
  of the server's ``--data-root`` folders (inputs) or strictly inside ``--output-root`` (report
  folders). Otherwise PERMISSION_DENIED, with one message whether the path exists or not.
- An input folder is walked (:func:`check_tree`) before it is read: a link anywhere in it that
  leads out of the roots refuses the request, so the image loader's recursive walk never reads
  a file outside the roots (``common.datasets`` also never descends into linked folders).
- A report folder must be new, empty, or a previous report of this validator (it holds
  :data:`REPORT_MARKER`): a request can never write into another artifact's folder (a training
  run's ``config.json``, a model directory).

Error messages never echo more than :data:`SHOWN` characters of what the client sent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

MAX_PATH = 4096  # PATH_MAX on Linux
MAX_COMPONENT = 255  # NAME_MAX, in bytes
SHOWN = 80
REPORT_MARKER = ".dermsynth-validator-report"


class RequestError(ValueError):
    """A request field the service refuses: the name of a gRPC status code (this module does
    not import grpc: the CLI uses it too) and a short message naming the field."""

    def __init__(self, code: str, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.code, self.field = code, field


def show(text: str, limit: int = SHOWN) -> str:
    """``text`` as it may appear in an error message: repr-quoted, at most ``limit`` chars."""
    text = str(text)
    if len(text) > limit:
        return repr(text[:limit]) + f"... ({len(text)} characters)"
    return repr(text)


def _invalid(field: str, message: str) -> RequestError:
    return RequestError("INVALID_ARGUMENT", field, message)


def _denied(field: str, where: str) -> RequestError:
    return RequestError(
        "PERMISSION_DENIED",
        field,
        f"not inside the server's {where} (paths are resolved, symlinks "
        "followed, before this check)",
    )


def check_syntax(field: str, raw: str) -> Path:
    """``raw`` as a Path, refusing NUL bytes and over-long paths or components."""
    if "\x00" in raw:
        raise _invalid(field, "the path holds a NUL byte")
    if len(raw) > MAX_PATH:
        raise _invalid(field, f"path too long ({len(raw)} characters; at most {MAX_PATH})")
    try:
        encoded = raw.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(field, "the path is not valid UTF-8") from None
    for part in encoded.split(b"/"):
        if len(part) > MAX_COMPONENT:
            raise _invalid(
                field, f"a path component is {len(part)} bytes long (at most {MAX_COMPONENT})"
            )
    return Path(raw)


def _resolve(path: Path, base: Path) -> Path:
    """``path`` (relative to ``base``) with every existing symlink and ``..`` resolved."""
    return (base / path).resolve(strict=False)


def _inside(path: Path, root: Path, *, strictly: bool = False) -> bool:
    if path == root:
        return not strictly
    return path.is_relative_to(root)


class Roots:
    """The data roots and the output root of a server, resolved once."""

    def __init__(self, data_roots: Sequence[Path], output_root: Path):
        if not data_roots:
            raise ValueError("at least one data root is needed")
        self.data = tuple(Path(r).resolve(strict=True) for r in data_roots)
        self.output = Path(output_root).resolve(strict=True)

    def allowed(self, path: Path) -> bool:
        """True if the resolved ``path`` is inside a data root or the output root."""
        return any(_inside(path, r) for r in self.data) or _inside(path, self.output)

    def input_path(self, field: str, raw: str) -> Path:
        """The resolved path of an input (folder or file) the request may read."""
        path = check_syntax(field, raw)
        try:
            resolved = _resolve(path, self.data[0])
        except (OSError, RuntimeError, ValueError):  # e.g. a symlink loop
            raise _denied(field, "data roots") from None
        if not any(_inside(resolved, r) for r in self.data):
            raise _denied(field, "data roots")
        return resolved

    def output_dir(self, field: str, raw: str) -> Path:
        """The resolved report folder; it must be strictly inside the output root. Nothing is
        created yet: see :meth:`prepare_output_dir`."""
        path = check_syntax(field, raw)
        try:
            resolved = _resolve(path, self.output)
        except (OSError, RuntimeError, ValueError):
            raise _denied(field, "output root") from None
        if not _inside(resolved, self.output, strictly=True):
            raise _denied(field, "output root")
        return resolved

    def prepare_output_dir(self, field: str, resolved: Path) -> Path:
        """Create the report folder ``resolved`` (from :meth:`output_dir`), which must be new,
        empty or a previous report (:func:`is_report_folder`), and leave the marker in it."""
        if resolved.exists() or resolved.is_symlink():
            if not resolved.is_dir():
                raise _invalid(field, "exists and is not a folder")
            if not is_report_folder(resolved):
                raise RequestError(
                    "FAILED_PRECONDITION",
                    field,
                    "an existing folder that is not a validator report: choose a new folder",
                )
        try:
            resolved.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _invalid(field, f"cannot create the folder ({exc.strerror})") from None
        mark_report_folder(resolved)
        return resolved


def is_report_folder(folder: Path) -> bool:
    """True for an empty folder, one holding :data:`REPORT_MARKER`, or one whose
    ``report.json`` was written by this validator."""
    try:
        with os.scandir(folder) as entries:
            if next(entries, None) is None:
                return True
    except OSError:
        return False
    marker = folder / REPORT_MARKER
    if marker.is_file() and not marker.is_symlink():
        return True
    report = folder / "report.json"
    try:
        if report.is_symlink() or report.stat().st_size > (64 << 20):
            return False
        doc = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and (doc.get("tool") or {}).get("name") == "dermsynth-validator"


def mark_report_folder(folder: Path) -> None:
    """Leave :data:`REPORT_MARKER` in a report folder so that later runs may reuse it."""
    marker = folder / REPORT_MARKER
    if not marker.exists():
        marker.write_text("a dermsynth validator report folder; the validator may rewrite it\n")


def check_tree(
    field: str,
    folder: Path,
    roots: Roots,
    *,
    should_stop: Callable[[], None] | None = None,
    max_entries: int = 2_000_000,
) -> None:
    """Refuse (PERMISSION_DENIED) a folder holding a symlink, at any depth, that leads out of
    the roots; links are not followed further (the image loader does not descend into linked
    folders). ``should_stop`` is called every 1000 entries (it may raise to stop the walk)."""
    seen = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in dirnames + filenames:
            seen += 1
            if seen % 1000 == 0 and should_stop is not None:
                should_stop()
            if seen > max_entries:
                raise RequestError(
                    "RESOURCE_EXHAUSTED", field, f"more than {max_entries} entries in the folder"
                )
            entry = Path(dirpath, name)
            if entry.is_symlink():
                try:
                    target = entry.resolve(strict=False)
                except (OSError, RuntimeError):
                    raise _denied(field, "roots (a link in the folder)") from None
                if not roots.allowed(target):
                    raise RequestError(
                        "PERMISSION_DENIED",
                        field,
                        f"holds a link that leads outside the server's roots "
                        f"({show(str(entry.relative_to(folder)))})",
                    )
