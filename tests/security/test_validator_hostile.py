"""Hostile requests against the real Validator gRPC server (in-process, port 0): path
traversal in every path field, symlinks out of the data roots (a linked folder, a linked file
and a linked subfolder inside an allowed folder), report
folders outside the output root or over another artifact, NUL bytes, over-long components,
a 1 MiB path, huge string fields, thresholds files holding secrets, generator targets that
are not allowed (no connection may be tried) and over-large counts, and bearer-token variants.

The feature model is a tiny real ONNX model (the suite is about the service, not the features).
Every refusal must come back at once with the right status and a short message that echoes
at most a few dozen characters of the request and never a memory address; nothing may be read
or written outside the roots. Bounded: one server, a few dozen requests."""

from __future__ import annotations

import re
import shutil
import socket
import threading
from pathlib import Path

import grpc
import pytest

from protos.dermsynth.v1 import validator_pb2 as pb
from protos.dermsynth.v1 import validator_pb2_grpc as pb_grpc
from tests.validator.validator_server import running_validator, server_config, tiny_feature_model

ROOT = Path(__file__).resolve().parents[2]
IMAGES = sorted((ROOT / "data" / "isic-demo").glob("*.jpg"))
SECRET = "sk-SECRET-7f3a9c"
PD, IA = grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT
ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


def _images(folder: Path, first: int, n: int) -> Path:
    folder.mkdir(parents=True)
    for path in IMAGES[first : first + n]:
        shutil.copy(path, folder)
    return folder


class _Recorder:
    """A listening TCP socket on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.accepted = 0
        self.target = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One server over: data/ (real, syn, a secret thresholds file, links out), reports/ (a
    training run's folder in it), outside/ (images and a secret beside the roots)."""
    from validator.features import FeatureModel

    base = tmp_path_factory.mktemp("hostile")
    config = server_config(base, max_workers=2, max_count=100, allowed_targets=("127.0.0.1:1",))
    data, reports = config.data_roots[0], config.output_root
    outside = base / "outside"
    _images(outside / "images", 0, 6)
    (outside / "secret.toml").write_text(f'dcr_quantile = "{SECRET}"\n')
    _images(data / "real", 6, 6)
    _images(data / "syn", 12, 6)
    (data / "link_out").symlink_to(outside / "images", target_is_directory=True)
    linked_file = _images(data / "real_with_linked_file", 18, 5)
    (linked_file / "evil.jpg").symlink_to(outside / "images" / IMAGES[0].name)
    linked_dir = _images(data / "real_with_linked_dir", 23, 5)
    (linked_dir / "sub").symlink_to(outside / "images", target_is_directory=True)
    (data / "thresholds_secret.toml").write_text(f'dcr_quantile = "{SECRET}"\n')
    (data / "not_thresholds.txt").write_text(f"API_KEY={SECRET}\n")
    run = reports / "train_run"
    run.mkdir()
    (run / "config.json").write_text('{"trainer": true}\n')
    model = FeatureModel(tiny_feature_model(base / "model"))
    with running_validator(config, model=model) as (handle, channel):
        yield {
            "stub": pb_grpc.ValidatorStub(channel),
            "data": data,
            "reports": reports,
            "outside": outside,
            "handle": handle,
            "base": base,
        }


def _request(world, **fields) -> pb.ValidateRequest:
    options = fields.pop("options", {})
    request = pb.ValidateRequest(
        real_dir=str(world["data"] / "real"),
        synthetic_dir=str(world["data"] / "syn"),
        out_dir=str(world["reports"] / "r"),
        options=pb.ValidateOptions(**{"checks": ["dcr"], "skip_tsne": True, **options}),
    )
    for key, value in fields.items():
        if key == "generator":
            request.generator.CopyFrom(value)
        else:
            setattr(request, key, value)
    return request


def _refused(world, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        for _ in world["stub"].Validate(request, timeout=60):
            pass
    details = err.value.details() or ""
    assert len(details) < 400, details[:500]
    assert not ADDRESS.search(details), details
    return err.value


def _outside(world, name: str) -> str:
    return str(world["outside"] / name)


TRAVERSALS = {
    "absolute": lambda w: _outside(w, "images"),
    "dotdot": lambda w: str(w["data"] / ".." / "outside" / "images"),
    "relative dotdot": lambda w: "../outside/images",
    "deep dotdot": lambda w: "real/../../../" * 3 + "etc",
    "linked folder": lambda w: str(w["data"] / "link_out"),
    "through a link": lambda w: str(w["data"] / "link_out" / "."),
    "etc": lambda w: "/etc",
    "proc": lambda w: "/proc/self/cwd",
    "root": lambda w: "/",
    "absent outside": lambda w: _outside(w, "no-such-folder"),
}


@pytest.mark.parametrize("field", ["real_dir", "holdout_dir", "synthetic_dir"])
@pytest.mark.parametrize("path", TRAVERSALS.values(), ids=TRAVERSALS.keys())
def test_inputs_outside_the_data_roots_are_permission_denied(world, field, path):
    error = _refused(world, _request(world, **{field: path(world)}))
    assert error.code() == PD and error.details().startswith(field)


def test_existence_outside_the_roots_is_not_revealed(world):
    present = _refused(world, _request(world, real_dir=_outside(world, "images")))
    absent = _refused(world, _request(world, real_dir=_outside(world, "nothing-here")))
    assert present.code() == absent.code() == PD
    assert present.details() == absent.details()
    for name in ("secret.toml", "absent.toml"):
        error = _refused(world, _request(world, options={"thresholds_file": _outside(world, name)}))
        assert error.code() == PD and SECRET not in error.details()
        assert error.details().startswith("options.thresholds_file")
    error = _refused(world, _request(world, options={"model_dir": _outside(world, "images")}))
    assert error.code() == PD


@pytest.mark.parametrize(
    "out",
    [
        lambda w: _outside(w, "report"),
        lambda w: str(w["reports"]),
        lambda w: str(w["reports"] / ".." / "outside" / "r2"),
        lambda w: "../outside/r3",
        lambda w: str(w["data"] / "r4"),
        lambda w: "/tmp/dermsynth-hostile-report",
    ],
    ids=["outside", "the root itself", "dotdot", "relative dotdot", "data root", "tmp"],
)
def test_report_folders_outside_the_output_root_are_refused(world, out):
    path = out(world)
    error = _refused(world, _request(world, out_dir=path))
    assert error.code() == PD and error.details().startswith("out_dir")
    if path != str(world["reports"]):
        assert not (world["reports"] / path).resolve().exists()


def test_a_report_never_overwrites_another_artifact(world):
    run = world["reports"] / "train_run"
    error = _refused(world, _request(world, out_dir=str(run)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    assert (run / "config.json").read_text() == '{"trainer": true}\n'


@pytest.mark.parametrize("folder", ["real_with_linked_file", "real_with_linked_dir"])
def test_links_out_of_an_allowed_folder_are_refused(world, folder):
    for field in ("real_dir", "synthetic_dir"):
        out = world["reports"] / f"links-{folder}-{field}"
        error = _refused(
            world, _request(world, out_dir=str(out), **{field: str(world["data"] / folder)})
        )
        assert error.code() == PD and error.details().startswith(field)
        assert not (out / "report.json").exists()


@pytest.mark.parametrize("name", ["thresholds_secret.toml", "not_thresholds.txt"])
def test_thresholds_file_contents_never_come_back(world, name):
    request = _request(
        world,
        out_dir=str(world["reports"] / f"thr-{name}"),
        options={"thresholds_file": str(world["data"] / name)},
    )
    error = _refused(world, request)
    assert error.code() == IA and error.details().startswith("options.thresholds_file")
    assert SECRET not in error.details() and "API_KEY" not in error.details()


HUGE = {
    "NUL byte": lambda w: str(w["data"] / "real\x00/etc"),
    "300-char component": lambda w: str(w["data"] / ("a" * 300)),
    "1 MiB path": lambda w: "/" + "a/" * (1 << 19),
    "1 MiB component": lambda w: "b" * (1 << 20),
}


@pytest.mark.parametrize("field", ["real_dir", "out_dir", "synthetic_dir"])
@pytest.mark.parametrize("path", HUGE.values(), ids=HUGE.keys())
def test_malformed_paths_are_invalid_argument_and_not_echoed(world, field, path):
    error = _refused(world, _request(world, **{field: path(world)}))
    assert error.code() == IA and error.details().startswith(field)
    assert len(error.details()) < 200


@pytest.mark.parametrize(
    "options",
    [
        {"diagnosis": "x" * (1 << 20)},
        {"checks": ["y" * (1 << 20)]},
        {"benign_malignant": "z" * (1 << 20)},
        {"model_dir": "\x00"},
        {"thresholds_file": "t" * 5000},
    ],
    ids=["diagnosis", "check name", "benign_malignant", "model_dir NUL", "thresholds 5000"],
)
def test_huge_string_fields_are_refused_briefly(world, options):
    error = _refused(world, _request(world, options=options))
    assert error.code() == IA and len(error.details()) < 300


def test_generator_targets_not_allowed_are_never_contacted(world):
    recorder = _Recorder()
    try:
        for target in (
            recorder.target,
            f"localhost:{recorder.target.split(':')[1]}",
            recorder.target + " ",
            "x" * 100_000,
        ):
            request = _request(world, generator=pb.GeneratorSource(target=target, count=1))
            error = _refused(world, request)
            assert error.code() == PD and error.details().startswith("generator.target")
    finally:
        recorder.close()
    assert recorder.accepted == 0


def test_generator_count_is_bounded(world):
    request = _request(world, generator=pb.GeneratorSource(target="127.0.0.1:1", count=2**31 - 1))
    error = _refused(world, request)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details().startswith("generator.count")


def test_a_legitimate_request_still_runs(world):
    """The refusals above are not a server that refuses everything."""
    request = _request(world, out_dir="ok")
    events = list(world["stub"].Validate(request, timeout=120))
    assert events[-1].WhichOneof("event") == "summary"
    assert Path(events[-1].summary.report_json).parent == (world["reports"] / "ok").resolve()
    # the same folder again: it is a previous report, so it may be rewritten
    events = list(world["stub"].Validate(request, timeout=120))
    assert events[-1].WhichOneof("event") == "summary"
    # nothing was ever written outside the output root
    assert sorted(p.name for p in world["outside"].iterdir()) == ["images", "secret.toml"]
    assert not any(p.name.startswith("report") for p in world["data"].rglob("*"))


TOKEN = "s3cret-Validator-token"


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        [("authorization", f"Bearer {TOKEN}x")],
        [("authorization", f"bearer {TOKEN}")],
        [("authorization", TOKEN)],
        [("authorization", f"Bearer  {TOKEN}")],
        [("authorization", f"Bearer {TOKEN[:-1]}")],
        [("authorization", "Bearer ")],
        [("authorization", "Bearer " + "A" * 10_000)],
        [("x-token", TOKEN)],
    ],
    ids=[
        "none",
        "longer",
        "lowercase scheme",
        "no scheme",
        "two spaces",
        "prefix",
        "empty",
        "10 KB",
        "other header",
    ],
)
def test_token_variants_are_unauthenticated(tmp_path, metadata):
    """With a token set, only the exact 'Bearer <token>' gets to the path checks; health
    stays open."""
    from tests.validator.validator_server import health

    config = server_config(tmp_path, token=TOKEN)
    with running_validator(config) as (handle, channel):
        stub = pb_grpc.ValidatorStub(channel)
        request = pb.ValidateRequest(real_dir="/etc", synthetic_dir="/etc", out_dir="/tmp/x")
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Validate(request, timeout=10, metadata=metadata))
        # 10 KB of metadata lies between grpc's soft (8 KiB) and hard (16 KiB) metadata limits,
        # where grpc core refuses a random share of calls with RESOURCE_EXHAUSTED before any
        # handler runs: either refusal is right, and nothing gets through
        refused = {grpc.StatusCode.UNAUTHENTICATED}
        if metadata and len(metadata[0][1]) > 8192:
            refused.add(grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert err.value.code() in refused
        if err.value.code() == grpc.StatusCode.UNAUTHENTICATED:  # our message: short
            assert len(err.value.details() or "") < 200
        with pytest.raises(grpc.RpcError) as err:  # the right token reaches the path checks
            list(
                stub.Validate(request, timeout=10, metadata=[("authorization", f"Bearer {TOKEN}")])
            )
        assert err.value.code() == PD
        health(channel)  # no token needed, answers
