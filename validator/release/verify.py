"""``python -m validator verify BUNDLE [--public-key K]``: is this bundle what its releaser
signed? BUNDLE is the bundle folder or its ``.tar.gz`` (read as a stream, never extracted).

Checks, each failure named as one problem: ``SIGNATURE`` is an Ed25519 signature over the
exact bytes of ``manifest.json`` (by ``--public-key`` when given: without it only the key
inside the bundle, which proves integrity but not who signed); the manifest is a
dermsynth-release manifest of a known schema; every file it lists exists with its sha256 and
size ("removed", "changed"); no other file exists ("added"); no link or special file; the
images and the report it names are among its files; the folder (or the archive's top folder)
carries the manifest's name, so a stamp (``-FAIL``, ``-RANDOM-WEIGHTS``) cannot be renamed away.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import UserError
from validator.release import FORMAT, MANIFEST, SCHEMA_VERSION, SIGNATURE
from validator.release.archive import digest, read_tar
from validator.release.signing import check_signature, load_public


@dataclass(frozen=True)
class Verification:
    bundle: Path
    problems: list[str] = field(default_factory=list)
    manifest: dict | None = None
    key_id: str | None = None
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_folder(folder: Path) -> tuple[dict[str, tuple[str, int]], dict[str, bytes], list[str]]:
    files, keep, problems = {}, {}, []
    for root, dirs, names in os.walk(folder):
        for d in list(dirs):
            if Path(root, d).is_symlink():
                problems.append(f"{Path(root, d).relative_to(folder).as_posix()}: is a link")
                dirs.remove(d)
        for name in names:
            path = Path(root, name)
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink() or not path.is_file():
                problems.append(f"{rel}: is a link or not a regular file")
                continue
            with open(path, "rb") as fh:
                sha, size, data = digest(fh, rel in (MANIFEST, SIGNATURE))
            files[rel] = (sha, size)
            if data is not None:
                keep[rel] = data
    return files, keep, problems


def _manifest(data: bytes, problems: list[str]) -> dict | None:
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        problems.append(f"{MANIFEST}: not valid JSON ({exc})")
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        problems.append(f"{MANIFEST}: not a {FORMAT} manifest")
        return None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        problems.append(
            f"{MANIFEST}: schema_version {manifest.get('schema_version')!r}; this dermsynth "
            f"reads {SCHEMA_VERSION}"
        )
        return None
    if not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("images"), list):
        problems.append(f"{MANIFEST}: has no files/images lists")
        return None
    return manifest


def _compare(manifest: dict, found: dict[str, tuple[str, int]], problems: list[str]) -> None:
    listed = manifest["files"]
    for rel in sorted(set(listed) | set(found)):
        if rel in (MANIFEST, SIGNATURE):
            continue
        if rel not in found:
            problems.append(f"removed: {rel} (listed in {MANIFEST}, missing)")
        elif rel not in listed:
            problems.append(f"added: {rel} (not listed in {MANIFEST})")
        else:
            want, (sha, size) = listed[rel], found[rel]
            if not isinstance(want, dict) or want.get("sha256") != sha or want.get("size") != size:
                problems.append(
                    f"changed: {rel} (sha256 {sha[:12]}, {size} bytes; {MANIFEST} says "
                    f"{str((want or {}).get('sha256'))[:12]}, {(want or {}).get('size')} bytes)"
                )
    for image in manifest["images"]:
        if not isinstance(image, dict) or image.get("file") not in listed:
            problems.append(f"{MANIFEST}: image entry {str(image)[:80]} names no listed file")
    validation = manifest.get("validation") if isinstance(manifest.get("validation"), dict) else {}
    report = validation.get("report_file")
    entry = listed.get(report) if isinstance(report, str) else None
    if not isinstance(entry, dict) or entry.get("sha256") != validation.get("report_sha256"):
        problems.append(f"{MANIFEST}: the validation report's sha256 does not match {report}")


def verify(bundle: Path, public_key_path: Path | None = None) -> Verification:
    """Check ``bundle`` (folder or .tar.gz); UserError only when it cannot be read at all."""
    bundle = Path(bundle)
    public_key = load_public(public_key_path) if public_key_path else None
    if bundle.is_dir():
        top = bundle.resolve().name
        found, keep, problems = _read_folder(bundle)
    elif bundle.is_file():
        top, found, keep, problems = read_tar(bundle)
    else:
        raise UserError(f"{bundle}: no such bundle folder or .tar.gz")
    for rel in (MANIFEST, SIGNATURE):
        if rel not in keep:
            problems.append(f"removed: {rel} (a bundle always has one)")
    if MANIFEST not in keep:
        return Verification(bundle, problems)
    manifest = _manifest(keep[MANIFEST], problems)
    signer = None
    if SIGNATURE in keep:
        check = check_signature(keep[SIGNATURE], keep[MANIFEST], public_key)
        signer = check.key_id
        if not check.ok:
            problems.append(check.problem)
    if manifest is not None:
        _compare(manifest, found, problems)
        name = manifest.get("name")
        if top != name:
            problems.append(
                f"the bundle is named {top!r} but its manifest says {name!r} "
                "(renamed: a stamp such as -FAIL may have been removed)"
            )
    return Verification(bundle, problems, manifest, signer, len(found))
