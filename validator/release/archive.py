"""The bundle as ``NAME.tar.gz``, written deterministically and read without extracting.

Writing (:func:`write_tar`): members in sorted path order under one top folder ``NAME/``,
regular files (0644) and folders (0755) only, owner 0:0 with empty names, every mtime the
bundle's ``created`` time, gzip header without a name or time: the same folder always gives the
same bytes. Written to a temporary name, then renamed.

Reading (:func:`read_tar`): members are hashed from the stream, never extracted. A member is
refused (a problem, not an exception) when its name is absolute, contains ``..`` or a
backslash, lies outside the top folder, repeats, or is not a regular file or folder (links,
devices, FIFOs): such an archive would not be safe to extract with a careless tool either.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from functools import partial
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20


def digest(fh, keep: bool) -> tuple[str, int, bytes | None]:
    """sha256 and size of a file object read in chunks, and its bytes when ``keep`` (the
    manifest and the signature, which verify reads whole)."""
    sha, size, head = hashlib.sha256(), 0, []
    for chunk in iter(partial(fh.read, CHUNK), b""):
        sha.update(chunk)
        size += len(chunk)
        if keep:
            head.append(chunk)
    return sha.hexdigest(), size, b"".join(head) if keep else None


def _files(folder: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        out.extend(Path(root, d) for d in dirs)
        out.extend(Path(root, f) for f in files)
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def write_tar(folder: Path, tar_path: Path, mtime: int) -> Path:
    """``folder`` as a deterministic ``tar_path`` (``folder.name/`` at the top)."""
    tmp = tar_path.with_name(f".{tar_path.name}.tmp-{os.getpid()}")
    top = folder.name

    def info(name: str, path: Path) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = mtime, 0, 0, "", ""
        if path.is_dir():
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        else:
            ti.type, ti.mode, ti.size = tarfile.REGTYPE, 0o644, path.stat().st_size
        return ti

    try:
        with open(tmp, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    tar.addfile(info(top, folder))
                    for path in _files(folder):
                        if path.is_symlink():
                            raise ValueError(f"{path} is a link: a bundle holds files only")
                        name = f"{top}/{path.relative_to(folder).as_posix()}"
                        if path.is_dir():
                            tar.addfile(info(name, path))
                        else:
                            with open(path, "rb") as fh:
                                tar.addfile(info(name, path), fh)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, tar_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return tar_path


def safe_name(name: str, top: str | None) -> str | None:
    """The path of member ``name`` inside the top folder, or None when it is unsafe."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return None
    parts = PurePosixPath(name).parts
    if any(p in ("..", ".") for p in parts) or ":" in parts[0]:
        return None
    if top is not None and parts[0] != top:
        return None
    return "/".join(parts[1:])


def read_tar(tar_path: Path) -> tuple[str | None, dict[str, tuple[str, int]], dict, list[str]]:
    """(top folder, {relative path: (sha256, size)} of its files, {path: bytes} of
    manifest.json and SIGNATURE, problems)."""
    from validator.release import MANIFEST, SIGNATURE

    files, keep, problems, top = {}, {}, [], None
    try:
        with tarfile.open(tar_path, mode="r:gz") as tar:
            for member in tar:
                if top is None:
                    top = PurePosixPath(member.name).parts[0] if member.name else None
                rel = safe_name(member.name, top)
                if rel is None:
                    problems.append(f"unsafe member {member.name[:120]!r} in {tar_path.name}")
                    continue
                if member.isdir():
                    continue
                if not member.isreg():
                    problems.append(f"{rel}: not a regular file in {tar_path.name} (link/device)")
                    continue
                if rel in files:
                    problems.append(f"{rel}: appears twice in {tar_path.name}")
                    continue
                sha, size, data = digest(tar.extractfile(member), rel in (MANIFEST, SIGNATURE))
                files[rel] = (sha, size)
                if data is not None:
                    keep[rel] = data
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
        problems.append(f"{tar_path.name}: not a readable tar.gz ({exc})")
    return top, files, keep, problems
