"""The tree's boundaries, read from the source: three services and what they share.

- No module of one service (trainer/, serving/, validator/) imports another service's modules,
  except the generator's client library ``serving.client`` (a gRPC client SDK others may use).
- common/ and protos/ import no service.
- The serving image (Dockerfile.serve) copies whole packages only.

Imports are read with :mod:`ast` (module level and inside functions), so a lazy import
counts as much as an eager one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("trainer", "serving", "validator")
SHARED = ("common", "protos")
CLIENT_SDK = ("serving.client",)


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``; relative imports resolved."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if "." in module:
                found.append((node.lineno, module))
            else:  # `from serving import client` imports serving.client (or a name of serving)
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _allowed(owner: str, module: str) -> bool:
    top = module.split(".")[0]
    if top not in SERVICES or top == owner:
        return True
    if owner in SHARED:
        return False
    return any(module == sdk or module.startswith(sdk + ".") for sdk in CLIENT_SDK)


def _violations(owner: str, root: Path = ROOT) -> list[str]:
    bad = []
    for path in sorted((root / owner).rglob("*.py")):
        if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        for line, module in imported_modules(path, root):
            top = module.split(".")[0]
            if top in SERVICES and not _allowed(owner, module):
                bad.append(f"{path.relative_to(root)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("owner", SERVICES + SHARED)
def test_no_module_reaches_into_another_service(owner):
    assert _violations(owner) == []


def test_the_reader_sees_cross_service_imports(tmp_path):
    """The check itself can fail: planted imports of other services are reported, lazy and
    relative ones included, and the client SDK is the only exception."""
    (tmp_path / "validator" / "sub").mkdir(parents=True)
    (tmp_path / "validator" / "bad.py").write_text(
        "import numpy\nfrom serving.client import fetch\nfrom serving import client\n"
        "def f():\n    from trainer import data\n    import serving.model\n"
    )
    (tmp_path / "validator" / "sub" / "ok.py").write_text("from .. import pipeline\n")
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "leak.py").write_text("from serving.client import fetch\n")
    assert _violations("validator", tmp_path) == [
        "validator/bad.py:5 imports trainer.data",
        "validator/bad.py:6 imports serving.model",
    ]
    assert _violations("common", tmp_path) == ["common/leak.py:1 imports serving.client"]


def test_serving_image_copies_whole_packages():
    """Dockerfile.serve copies directories, never single files picked out of a package."""
    text = (ROOT / "Dockerfile.serve").read_text()
    copies = [
        line.split()[1:-1]
        for line in text.splitlines()
        if re.match(r"COPY\s+(?!--from)", line) and "requirements" not in line
    ]
    assert copies, "Dockerfile.serve has no COPY of the source"
    for sources in copies:
        for source in sources:
            assert source.endswith("/") and (ROOT / source).is_dir(), (
                f"Dockerfile.serve copies {source}: copy whole packages"
            )
            assert source.rstrip("/") not in ("trainer",), "the serving image has no trainer"
