"""Same (seed, index) → identical bytes across batch sizes, start_index, encodings, servers."""

from __future__ import annotations

import io

import grpc
import numpy as np
import onnxruntime as ort
from PIL import Image

from common.images import to_uint8
from protos.dermsynth.v1 import generator_pb2 as pb
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc
from serving.latents import latent, latents
from tests.serving.conftest import collect


def test_latent_formula_is_seedsequence_of_the_pair():
    want = np.random.Generator(np.random.PCG64(np.random.SeedSequence([42, 7]))).standard_normal(
        16, dtype=np.float32
    )
    assert np.array_equal(latent(42, 7, 16), want)
    assert np.array_equal(latents(42, 5, 4, 16)[2], want)
    assert not np.array_equal(latent(42, 8, 16), want)
    assert not np.array_equal(latent(43, 7, 16), want)


def test_bytes_do_not_depend_on_batch_size_or_start_index(server):
    _, stub = server
    reference = collect(stub, seed=11, count=40, batch_size=1)
    assert len(set(reference.values())) == 40  # distinct images
    for batch_size in (3, 16, 40):
        assert collect(stub, seed=11, count=40, batch_size=batch_size) == reference
    window = collect(stub, seed=11, count=13, start_index=21, batch_size=5)
    assert window == {i: reference[i] for i in range(21, 34)}
    other_seed = collect(stub, seed=12, count=40, batch_size=16)
    assert not set(other_seed.values()) & set(reference.values())


def test_bytes_survive_a_restart_and_another_inference_batch(make_server):
    first, target = make_server()
    with grpc.insecure_channel(target) as channel:
        before = collect(pb_grpc.GeneratorStub(channel), seed=5, count=20, batch_size=7)
    first.stop(0).wait(10)
    _, target = make_server(inference_batch=5)
    with grpc.insecure_channel(target) as channel:
        after = collect(pb_grpc.GeneratorStub(channel), seed=5, count=20, batch_size=20)
    assert after == before


def test_bytes_do_not_depend_on_concurrent_inference(make_server):
    """One ONNX Runtime call at a time (2 threads) or several chunks in flight (1 thread each):
    the same images, in order, with nothing lost or duplicated."""
    results = []
    for workers, threads, prefetch in ((1, 2, 1), (3, 1, 4)):
        server, target = make_server(
            inference_workers=workers, threads=threads, prefetch=prefetch, inference_batch=4
        )
        with grpc.insecure_channel(target) as channel:
            results.append(
                collect(
                    pb_grpc.GeneratorStub(channel), seed=8, start_index=3, count=37, batch_size=6
                )
            )
        server.stop(0).wait(10)
    assert list(results[0]) == list(range(3, 40))
    assert results[1] == results[0]


def test_pixels_equal_an_independent_onnx_runtime_run(server, tiny_model_dir):
    """PNG and RAW carry the same pixels, and they are the model's output for the documented
    latent, computed here one image at a time outside the server."""
    _, stub = server
    raw = collect(stub, seed=3, count=6, start_index=100, encoding=pb.ENCODING_RAW_RGB8)
    png = collect(stub, seed=3, count=6, start_index=100, encoding=pb.ENCODING_PNG)
    session = ort.InferenceSession(
        str(tiny_model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    for index in range(100, 106):
        z = latent(3, index, 16)[None]
        expected = to_uint8(session.run(["images"], {"latent": z})[0])[0]
        decoded = np.asarray(Image.open(io.BytesIO(png[index])))
        assert decoded.dtype == np.uint8 and decoded.shape == (32, 32, 3)
        assert np.array_equal(decoded, expected)
        assert raw[index] == expected.tobytes()


def test_raw_batches_describe_their_shape(server):
    _, stub = server
    batches = list(
        stub.Generate(
            pb.GenerateRequest(seed=1, count=5, batch_size=2, encoding=pb.ENCODING_RAW_RGB8)
        )
    )
    assert [len(b.images) for b in batches] == [2, 2, 1]
    for b in batches:
        assert (b.encoding, b.height, b.width, b.channels) == (pb.ENCODING_RAW_RGB8, 32, 32, 3)
        assert all(len(i.data) == 32 * 32 * 3 for i in b.images)


def test_unspecified_encoding_means_png(server):
    _, stub = server
    batch = next(iter(stub.Generate(pb.GenerateRequest(seed=1, count=1))))
    assert batch.encoding == pb.ENCODING_PNG
    assert batch.images[0].data.startswith(b"\x89PNG\r\n\x1a\n")


def test_to_uint8_maps_the_range_ends_and_rounds():
    x = np.array([-1.5, -1.0, 0.0, 1.0, 2.0, -1 + 1 / 127.5], np.float32)
    assert to_uint8(x).tolist() == [0, 0, 128, 255, 255, 1]
