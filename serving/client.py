"""Fetching generated images into a folder, resumably: the library call :func:`fetch` and the
CLI ``python -m serving.client``.

The folder holds ``{index:08d}.png`` files (each written to a temporary name, then renamed, so
a file that exists is complete) and ``manifest.json`` (seed, the index ranges present, the
model's info including its sha256; rewritten after every batch, so after a ``kill -9`` it lags
the image files by at most one batch; the image files are the truth). Re-running the same
command asks the server only for the missing index ranges; a folder holding another seed's or
another model's images is refused (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
from tqdm import tqdm

from common.cli import run_cli
from common.config import add_arguments, atomic_write_bytes, resolve
from common.errors import ReportedError, UserError
from protos.dermsynth.v1 import generator_pb2 as pb
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc
from serving.channel import call_metadata, describe_rpc_error, open_channel
from serving.config import CLIENT_ENV_PREFIX, ClientConfig
from serving.model_info import model_info_dict

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "dermsynth-fetch"
_IMAGE_NAME = re.compile(r"^(\d{8,})\.png$")
_TEMPORARY = re.compile(r"^\.(\d{8,}\.png|manifest\.json)\.tmp-\d+$")  # atomic_write_bytes


class FolderMismatch(UserError):
    """The output folder holds images of another seed or model, or foreign files."""


class FetchFailed(ReportedError):
    """The server refused or broke off the call (exit 1, not a usage error); what was written
    so far is kept."""


@dataclass(frozen=True)
class FetchResult:
    """What one :func:`fetch` did."""

    out_dir: Path
    seed: int
    start_index: int
    count: int
    written: int  # images received and written by this call
    skipped: int  # images of the requested range already in the folder
    indices: tuple[int, ...]  # every index present in the folder afterwards
    model_sha256: str


def image_name(index: int) -> str:
    return f"{index:08d}.png"


def _present_indices(out_dir: Path) -> set[int]:
    """The indices of the complete image files in ``out_dir`` (temporary files never count)."""
    present = set()
    for entry in os.scandir(out_dir):
        match = _IMAGE_NAME.match(entry.name)
        if match and entry.is_file(follow_symlinks=False):
            present.add(int(match.group(1)))
    return present


def _remove_stale_temporaries(out_dir: Path) -> None:
    """Delete the temporary files an interrupted run of this client left (``.NAME.tmp-PID``
    beside an image or the manifest). Called only once the folder is known to be ours, and
    touches nothing else: no folders, no links, no other names."""
    for entry in os.scandir(out_dir):
        if _TEMPORARY.match(entry.name) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)


def _ranges(indices: set[int]) -> list[list[int]]:
    """Sorted ``[first, last]`` runs of consecutive indices (inclusive): compact for the
    manifest, which is rewritten after every batch."""
    runs: list[list[int]] = []
    for index in sorted(indices):
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return runs


def manifest_indices(manifest: dict) -> list[int]:
    """The indices a fetch manifest lists (format 2: ``index_ranges``; format 1: ``indices``)."""
    if "index_ranges" in manifest:
        return [i for first, last in manifest["index_ranges"] for i in range(first, last + 1)]
    return list(manifest.get("indices", []))


def _check_folder(out_dir: Path, seed: int, model_sha256: str, present: set[int]) -> None:
    path = out_dir / MANIFEST
    if not path.exists():
        if present:
            raise FolderMismatch(
                f"{out_dir} holds {len(present)} image files but no {MANIFEST}: "
                "they may come from another seed or model; use an empty folder"
            )
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise FolderMismatch(f"{path} is unreadable ({exc}); use a new folder") from None
    if old.get("format") != MANIFEST_FORMAT:
        raise FolderMismatch(f"{path} is not a dermsynth fetch manifest; use a new folder")
    if old.get("seed") != seed:
        raise FolderMismatch(
            f"{out_dir} holds images of seed {old.get('seed')}, not {seed}: "
            "use another folder for another seed"
        )
    if old.get("model_sha256") != model_sha256:
        raise FolderMismatch(
            f"{out_dir} holds images of model {old.get('model_sha256')}, but the "
            f"server serves model {model_sha256}: use another folder"
        )


def missing_ranges(
    start: int, count: int, present: set[int], max_count: int
) -> Iterator[tuple[int, int]]:
    """(start_index, count) ranges of the indices in [start, start + count) not in
    ``present``, each at most ``max_count`` long."""
    run_start = None
    for index in range(start, start + count + 1):
        missing = index < start + count and index not in present
        if missing and run_start is None:
            run_start = index
        elif (not missing or index - run_start >= max_count) and run_start is not None:
            yield run_start, index - run_start
            run_start = index if missing else None


def _write_manifest(
    out_dir: Path,
    *,
    target: str,
    seed: int,
    start_index: int,
    count: int,
    info: dict,
    present: set[int],
    complete: bool = False,
) -> None:
    """Rewrite ``manifest.json``. During a fetch it is rewritten after every batch (without
    fsync: it only has to survive the process, e.g. a ``kill -9``), so it lags the image files
    by at most one batch; ``complete`` is true once the requested range is all present."""
    doc = {
        "format": MANIFEST_FORMAT,
        "format_version": 2,
        "target": target,
        "seed": seed,
        "start_index": start_index,
        "count": count,
        "encoding": "png",
        "model_sha256": info["model_sha256"],
        "model": info,
        "complete": complete,
        "updated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "index_ranges": _ranges(present),
    }
    atomic_write_bytes(
        out_dir / MANIFEST, (json.dumps(doc, indent=1) + "\n").encode(), fsync=complete
    )


def fetch(
    target: str,
    *,
    seed: int,
    count: int,
    out_dir: Path,
    start_index: int = 0,
    batch_size: int = 64,
    token: str | None = None,
    root_cert: Path | None = None,
    progress: bool = True,
    timeout: float | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> FetchResult:
    """Make ``out_dir`` hold images ``start_index .. start_index + count - 1`` of ``seed`` from
    the server at ``target``, fetching only those not already there.

    ``on_batch(present, count)`` is called after every batch written; an exception it raises
    (e.g. the caller was cancelled) cancels the call and propagates; what was written is kept."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"--out {out_dir}: cannot create the output folder ({exc.strerror})"
        ) from None
    metadata = call_metadata(token)
    with open_channel(target, root_cert=root_cert) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        try:
            info_msg = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30, metadata=metadata)
        except grpc.RpcError as exc:
            raise FetchFailed(
                f"GetModelInfo on {target} failed: {describe_rpc_error(exc)}"
            ) from None
        info = model_info_dict(info_msg)
        present = _present_indices(out_dir)
        _check_folder(out_dir, seed, info_msg.model_sha256, present)
        _remove_stale_temporaries(out_dir)
        wanted = range(start_index, start_index + count)
        skipped = sum(1 for i in present if i in wanted)
        batch_size = min(batch_size, info_msg.max_batch_size or batch_size)
        save = dict(target=target, seed=seed, start_index=start_index, count=count, info=info)
        _write_manifest(out_dir, present=present, **save)
        written = 0
        bar = tqdm(
            total=count, initial=skipped, unit="img", disable=not progress, desc=f"seed {seed}"
        )
        try:
            for first, n in missing_ranges(
                start_index, count, present, info_msg.max_count or count
            ):
                request = pb.GenerateRequest(
                    seed=seed,
                    count=n,
                    start_index=first,
                    batch_size=min(batch_size, n),
                    encoding=pb.ENCODING_PNG,
                )
                expected = first
                call = stub.Generate(request, timeout=timeout, metadata=metadata)
                for batch in call:
                    for image in batch.images:
                        if (
                            image.index != expected
                            or image.seed != seed
                            or not image.data
                            or batch.encoding != pb.ENCODING_PNG
                        ):
                            call.cancel()
                            raise FetchFailed(
                                f"the server sent image (seed {image.seed}, index {image.index}, "
                                f"{len(image.data)} bytes, encoding {batch.encoding}) where "
                                f"(seed {seed}, index {expected}, PNG) was expected"
                            )
                        atomic_write_bytes(
                            out_dir / image_name(image.index), image.data, fsync=False
                        )
                        present.add(image.index)
                        expected += 1
                        written += 1
                    bar.update(len(batch.images))
                    _write_manifest(out_dir, present=present, **save)
                    if on_batch is not None:
                        try:
                            on_batch(skipped + written, count)
                        except BaseException:
                            call.cancel()
                            raise
                if expected != first + n:
                    raise FetchFailed(
                        f"the server ended the stream at index {expected}, before {first + n}"
                    )
        except grpc.RpcError as exc:
            raise FetchFailed(
                f"Generate on {target} failed: {describe_rpc_error(exc)}; kept "
                f"{written} new images in {out_dir}; run again to resume"
            ) from None
        finally:
            bar.close()
            _write_manifest(
                out_dir, present=present, **save, complete=all(i in present for i in wanted)
            )
    return FetchResult(
        out_dir=out_dir,
        seed=seed,
        start_index=start_index,
        count=count,
        written=written,
        skipped=skipped,
        indices=tuple(sorted(present)),
        model_sha256=info_msg.model_sha256,
    )


EPILOG = """examples:
  python -m serving.client --target localhost:50051 --seed 42 --count 1000 --out out/seed42
  # interrupted? run the same command again: only the missing images are fetched
  DERMSYNTH_CLIENT_TOKEN=s3cret python -m serving.client --target gen.example:443 \\
      --tls-ca ca.pem --seed 42 --count 10000 --out out/seed42

Options can also be set as DERMSYNTH_CLIENT_<OPTION>. Exit codes: 0 done, 1 the server refused
or broke off the call (images already written are kept), 2 bad usage or a mismatched folder.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.client",
        description="fetch seeded synthetic images from a dermsynth server into a folder",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser, ClientConfig)
    config = resolve(ClientConfig, parser.parse_args(argv), prefix=CLIENT_ENV_PREFIX)
    result = fetch(
        config.target,
        seed=config.seed,
        count=config.count,
        out_dir=config.out,
        start_index=config.start_index,
        batch_size=config.batch_size,
        token=config.token,
        root_cert=config.tls_ca,
        progress=config.progress,
        timeout=config.timeout,
    )
    print(
        f"{result.out_dir}: {result.written} images written, {result.skipped} already present "
        f"(seed {result.seed}, model {result.model_sha256[:12]})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="serving.client"))
