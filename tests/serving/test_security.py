"""Bearer-token auth (health stays open) and TLS with a self-signed certificate."""

from __future__ import annotations

import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.dermsynth.v1 import generator_pb2 as pb
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc
from serving.channel import open_channel
from serving.health import check_health, get_model_info

TOKEN = "s3cret-token"


def test_bearer_token(make_server):
    _, target = make_server(token=TOKEN)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        request = pb.GenerateRequest(seed=1, count=3)
        for metadata in ((), (("authorization", "Bearer wrong"),),
                         (("authorization", TOKEN),)):
            with pytest.raises(grpc.RpcError) as info:
                list(stub.Generate(request, metadata=metadata))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as info:
                stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        good = (("authorization", f"Bearer {TOKEN}"),)
        assert sum(len(b.images) for b in stub.Generate(request, metadata=good)) == 3
        # probes need no token
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_tls(make_server, self_signed, tmp_path):
    cert, key = self_signed
    _, target = make_server(tls_cert=cert, tls_key=key, token=TOKEN)
    info = get_model_info(target, token=TOKEN, root_cert=cert)
    assert info.resolution == 32
    assert check_health(target, root_cert=cert) == "SERVING"
    with open_channel(target, root_cert=cert) as channel:
        batches = list(pb_grpc.GeneratorStub(channel).Generate(
            pb.GenerateRequest(seed=1, count=2), metadata=(("authorization", f"Bearer {TOKEN}"),)))
        assert sum(len(b.images) for b in batches) == 2
    # a plaintext client cannot talk to the TLS port
    assert check_health(target, timeout=2).startswith("UNREACHABLE")
    # nor a TLS client that does not trust the certificate
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=x",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(other)], check=True,
                   capture_output=True)
    assert check_health(target, timeout=2, root_cert=other).startswith("UNREACHABLE")
