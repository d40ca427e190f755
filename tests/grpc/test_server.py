"""The gRPC server around the API: health, reflection, TLS and mTLS, the status table."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from typing import Any

import grpc
import pykka
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from actors.errors import Reason
from supervisors import stop_tree
from tests.gateway.conftest import start_node, unique
from tests.grpc.conftest import GrpcNode, grpc_env
from whispr.grpc import server as grpc_server
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as pb
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2_grpc as pb_grpc
from whispr.grpc.status import STATUS_BY_REASON

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_every_reason_has_a_status_code() -> None:
    assert set(STATUS_BY_REASON) == set(Reason)
    assert STATUS_BY_REASON[Reason.NOT_FOUND] == grpc.StatusCode.NOT_FOUND
    assert STATUS_BY_REASON[Reason.UNAVAILABLE] == grpc.StatusCode.UNAVAILABLE
    assert STATUS_BY_REASON[Reason.RATE_LIMITED] == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_health_follows_readiness_and_needs_no_credentials(
    grpc_node: GrpcNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = grpc_node.running.node
    async with grpc_node.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ["", grpc_server.MESSAGING_SERVICE]:
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == SERVING

        # The shared store stops answering: the node still serves (whispr/readiness.py).
        async def down() -> bool:
            return False

        monkeypatch.setattr(node.store.get().store, "ping", down)
        await asyncio.sleep(0.2)
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert answer.status == SERVING
        monkeypatch.undo()


async def test_reflection_lists_the_services(grpc_node: GrpcNode) -> None:
    async with grpc_node.channel() as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        names: set[str] = set()
        async for answer in reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        ):
            names |= {s.name for s in answer.list_services_response.service}
    assert {"whispr.messaging.v1.MessagingService", "grpc.health.v1.Health"} <= names


async def test_a_stopping_node_reports_not_serving(tmp_path: Path) -> None:
    running = await start_node(grpc_env(WHISPR_SQLITE_PATH=str(tmp_path / "n.db")))
    server = running.node.grpc.get()
    await server.health.enter_graceful_shutdown()
    answer = await server.health.Check(health_pb2.HealthCheckRequest(service=""), None)
    assert answer.status == NOT_SERVING
    await stop_tree(running.root, deadline=10)
    assert running.node.grpc.peek() is None


# -- TLS -----------------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, signer = (subject, key) if issuer is None else (issuer[0].subject, issuer[1])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    """A CA, a server certificate for localhost and a client certificate for ``analytics``."""
    ca_key = _key()
    ca = _certificate("whispr test CA", ca_key, None, ca=True)
    server_key, client_key = _key(), _key()
    server = _certificate("localhost", server_key, (ca, ca_key))
    client = _certificate("analytics", client_key, (ca, ca_key))
    files = {
        "ca": _pem(ca),
        "server_cert": _pem(server),
        "server_key": _key_pem(server_key),
        "client_cert": _pem(client),
        "client_key": _key_pem(client_key),
    }
    for name, data in files.items():
        (tmp_path / f"{name}.pem").write_bytes(data)
    return {**files, "dir": tmp_path}


async def test_mtls_names_the_caller_by_its_certificate(pki: dict[str, Any]) -> None:
    directory = pki["dir"]
    running = await start_node(
        grpc_env(
            WHISPR_SQLITE_PATH=str(directory / "n.db"),
            WHISPR_GRPC_TLS_CERT=str(directory / "server_cert.pem"),
            WHISPR_GRPC_TLS_KEY=str(directory / "server_key.pem"),
            WHISPR_GRPC_TLS_CLIENT_CA=str(directory / "ca.pem"),
        )
    )
    address = f"localhost:{running.node.grpc.get().port}"
    try:
        with_cert = grpc.ssl_channel_credentials(
            root_certificates=pki["ca"],
            private_key=pki["client_key"],
            certificate_chain=pki["client_cert"],
        )
        async with grpc.aio.secure_channel(address, with_cert) as channel:
            stub = pb_grpc.MessagingServiceStub(channel)
            created = await stub.CreateConversation(
                pb.CreateConversationRequest(
                    kind=pb.CONVERSATION_KIND_GROUP, creator_id=unique("ada")
                )
            )
            sent = await stub.SendServiceMessage(
                pb.SendServiceMessageRequest(
                    conversation_id=created.conversation.id, client_id="c", content="hi"
                )
            )
            assert sent.message.sender_id == "service:analytics"

        # No client certificate: the handshake itself fails.
        without = grpc.ssl_channel_credentials(root_certificates=pki["ca"])
        async with grpc.aio.secure_channel(address, without) as channel:
            stub = pb_grpc.MessagingServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetConversation(
                    pb.GetConversationRequest(conversation_id="x"), timeout=5
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await stop_tree(running.root, deadline=10)


async def test_tls_with_a_bearer_token(pki: dict[str, Any]) -> None:
    directory = pki["dir"]
    running = await start_node(
        grpc_env(
            WHISPR_SQLITE_PATH=str(directory / "n.db"),
            WHISPR_GRPC_TLS_CERT=str(directory / "server_cert.pem"),
            WHISPR_GRPC_TLS_KEY=str(directory / "server_key.pem"),
        )
    )
    address = f"localhost:{running.node.grpc.get().port}"
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=pki["ca"])
        async with grpc.aio.secure_channel(address, credentials) as channel:
            stub = pb_grpc.MessagingServiceStub(channel)
            created = await stub.CreateConversation(
                pb.CreateConversationRequest(
                    kind=pb.CONVERSATION_KIND_GROUP, creator_id=unique("ada")
                ),
                metadata=GrpcNode.auth("users"),
            )
            assert created.conversation.id
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetConversation(
                    pb.GetConversationRequest(conversation_id=created.conversation.id)
                )
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await stop_tree(running.root, deadline=10)


async def test_a_taken_port_fails_the_start(tmp_path: Path) -> None:
    first = await start_node(grpc_env(WHISPR_SQLITE_PATH=str(tmp_path / "a.db")))
    try:
        taken = first.node.grpc.get().port
        env = grpc_env(WHISPR_SQLITE_PATH=str(tmp_path / "b.db"), WHISPR_GRPC_PORT=str(taken))
        with pytest.raises(pykka.ActorDeadError, match=r"child 'grpc' failed to start.*in use"):
            await start_node(env)
    finally:
        await stop_tree(first.root, deadline=10)


async def test_calls_are_counted_in_the_metrics(grpc_node: GrpcNode) -> None:
    import urllib.request

    async with grpc_node.channel() as channel:
        stub = pb_grpc.MessagingServiceStub(channel)
        await stub.CreateConversation(
            pb.CreateConversationRequest(kind=pb.CONVERSATION_KIND_GROUP, creator_id="ada"),
            metadata=GrpcNode.auth(),
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetConversation(pb.GetConversationRequest(conversation_id="x"))

    def scrape() -> str:
        url = f"{grpc_node.running.http}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    body = await asyncio.to_thread(scrape)
    calls = [line for line in body.splitlines() if line.startswith("whispr_grpc_calls")]
    assert any('method="CreateConversation"' in line and 'code="OK"' in line for line in calls)
    assert any(
        'method="GetConversation"' in line and 'code="UNAUTHENTICATED"' in line for line in calls
    )
    assert "whispr_grpc_call_seconds" in body
