"""The guarded httpx client and transport on their own, without a database: what every
outbound client (http steps, http_get, model providers, async SDK clients) gets from the guard.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import http.server
import json
import ssl
import threading
import zlib
from urllib.parse import quote

import httpx
import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from runs.engine.netguard import (
    AsyncGuardedTransport,
    BlockedAddress,
    ResponseTooLarge,
    fetch,
    guarded_async_client,
    guarded_client,
)
from runs.engine.nodes.base import NetPolicy
from tests.security.servers import Canary, PublicServer, serving

LOOPBACK = NetPolicy(allowed_networks=("127.0.0.0/8",))


class Recorder:
    """An inner transport that answers from a table and keeps every request it was given."""

    def __init__(self, answers: dict[str, httpx.Response]) -> None:
        self.answers = answers
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.answers.get(request.url.path, httpx.Response(200, json={"ok": True}))


def redirect(location: str, code: int = 302) -> httpx.Response:
    return httpx.Response(code, headers={"Location": location})


@pytest.mark.parametrize(
    ("location", "kept"),
    [
        ("https://127.0.0.1:8080/b", False),  # scheme changed
        ("http://127.0.0.1:8081/b", False),  # port changed
        ("http://127.0.0.2:8080/b", False),  # host changed
        ("http://127.0.0.1/b", False),  # port 80 is not 8080
        ("/b", True),  # same origin
        ("http://127.0.0.1:8080/b", True),  # same origin, written out
    ],
)
def test_credential_headers_follow_a_redirect_only_within_the_origin(location, kept):
    recorder = Recorder({"/a": redirect(location)})
    headers = {"Authorization": "Bearer t", "Cookie": "c=1", "X-Token": "t", "Accept": "x/y"}
    with guarded_client(
        LOOPBACK,
        timeout=5,
        credential_headers=["X-Token"],
        inner=httpx.MockTransport(recorder),
    ) as client:
        assert client.get("http://127.0.0.1:8080/a", headers=headers).status_code == 200
    first, second = recorder.seen
    assert {"authorization", "cookie", "x-token"} <= set(first.headers)
    names = {"authorization", "cookie", "x-token"} & set(second.headers)
    assert names == ({"authorization", "cookie", "x-token"} if kept else set())
    assert second.headers["accept"] == "x/y"
    assert (
        second.headers["host"]
        == httpx.URL("http://127.0.0.1:8080/a").join(location).netloc.decode()
    )


def test_an_https_request_keeps_the_name_for_tls_while_it_goes_to_the_vetted_address():
    recorder = Recorder({})
    with guarded_client(LOOPBACK, timeout=5, inner=httpx.MockTransport(recorder)) as client:
        client.get("https://localhost:8443/x")
    (sent,) = recorder.seen
    assert sent.url.host in ("127.0.0.1", "::1")
    assert sent.headers["host"] == "localhost:8443"
    assert sent.extensions["sni_hostname"] == "localhost"


def test_a_post_turned_into_a_get_by_a_303_loses_its_body_and_a_307_keeps_it():
    recorder = Recorder({"/see-other": redirect("/b", 303), "/temporary": redirect("/c", 307)})
    with guarded_client(LOOPBACK, timeout=5, inner=httpx.MockTransport(recorder)) as client:
        client.post("http://127.0.0.1:8080/see-other", content=b"payload")
        client.post("http://127.0.0.1:8080/temporary", content=b"payload")
    assert [(r.method, r.url.path, r.read()) for r in recorder.seen] == [
        ("POST", "/see-other", b"payload"),
        ("GET", "/b", b""),
        ("POST", "/temporary", b"payload"),
        ("POST", "/c", b"payload"),
    ]
    assert "content-length" not in recorder.seen[1].headers


def test_a_refused_address_raises_before_the_inner_transport_is_asked():
    recorder = Recorder({})
    with guarded_client(NetPolicy(), timeout=5, inner=httpx.MockTransport(recorder)) as client:
        for url in ("http://127.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://2130706433/"):
            with pytest.raises(BlockedAddress, match="internal address"):
                client.get(url)
    assert recorder.seen == []


def test_the_async_client_is_guarded_the_same_way():
    async def scenario(canary: Canary, origin: PublicServer, other: PublicServer):
        async with guarded_async_client(NetPolicy(), timeout=5) as client:
            with pytest.raises(BlockedAddress, match="internal address"):
                await client.get(f"http://127.0.0.1:{canary.port}/")
        to = quote(f"{other.url}/landed", safe="")
        async with guarded_async_client(LOOPBACK, timeout=5) as client:
            response = await client.get(
                f"{origin.url}/redirect?code=307&to={to}",
                headers={"Authorization": "Bearer t", "Accept": "x/y"},
            )
        return response

    with serving(Canary(), PublicServer("127.0.0.1"), PublicServer("127.0.0.2")) as started:
        canary, origin, other = started
        response = asyncio.run(scenario(canary, origin, other))
        assert response.json()["path"] == "/landed"
        assert canary.hits == 0
        assert origin.headers_seen[0]["authorization"] == "Bearer t"
        assert "authorization" not in other.headers_seen[0]
        assert other.headers_seen[0]["accept"] == "x/y"


@pytest.fixture
def self_signed_server(tmp_path):
    """An https server on 127.0.0.1 whose certificate for `localhost` nobody vouches for."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_clients_check_certificates_with_their_shared_tls_context(self_signed_server):
    url = f"https://localhost:{self_signed_server}/"
    for _ in range(2):  # the second client takes the context the first one built
        with (
            guarded_client(LOOPBACK, timeout=5) as client,
            pytest.raises(httpx.ConnectError) as refused,
        ):
            client.get(url)
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)


def test_fetch_stops_reading_a_body_at_the_policys_limit():
    # A download of gigabytes was read whole into the worker's memory.
    pulled = []

    def endless():
        while True:
            pulled.append(1)
            yield b"x" * 65536

    policy = NetPolicy(allowed_networks=("127.0.0.0/8",), max_response_bytes=1_000_000)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=endless()))
    response = fetch("GET", "http://127.0.0.1:8080/big", policy=policy, transport=transport)
    assert len(response.content) == 1_000_000 and response.extensions["truncated"] is True
    assert len(pulled) == 16  # 16 chunks of 64 KiB hold the first million bytes
    small = httpx.MockTransport(lambda request: httpx.Response(200, content=b"x" * 999_999))
    whole = fetch("GET", "http://127.0.0.1:8080/", policy=policy, transport=small)
    assert len(whole.content) == 999_999 and whole.extensions["truncated"] is False


def test_fetch_keeps_the_servers_headers_and_decodes_a_compressed_body_once():
    body = json.dumps({"word": "café"}).encode()
    answer = httpx.Response(
        200,
        content=gzip.compress(body),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json; charset=utf-8"},
    )
    transport = httpx.MockTransport(lambda request: answer)
    response = fetch("GET", "http://127.0.0.1:8080/", policy=LOOPBACK, transport=transport)
    assert response.json() == {"word": "café"}
    assert response.headers["content-encoding"] == "gzip"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "identity"])
def test_the_async_transport_hands_the_sdks_a_compressed_answer_decoded(encoding):
    body = json.dumps({"word": "café" * 1000}).encode()
    sent = {"gzip": gzip.compress, "deflate": zlib.compress, "identity": bytes}[encoding](body)
    # A stream, as a network transport hands it on: content= would be decoded by httpx2 itself.
    answer = httpx2.Response(
        200, stream=httpx2.ByteStream(sent), headers={"Content-Encoding": encoding}
    )
    transport = AsyncGuardedTransport(LOOPBACK, inner=httpx2.MockTransport(lambda r: answer))

    async def get() -> httpx2.Response:
        async with httpx2.AsyncClient(transport=transport) as client:
            return await client.get("http://127.0.0.1:8080/")

    response = asyncio.run(get())
    assert response.json() == {"word": "café" * 1000}


def test_the_async_transport_stops_an_answer_past_the_limit_as_decompressed():
    policy = NetPolicy(allowed_networks=("127.0.0.0/8",), max_response_bytes=1 << 20)
    bomb = gzip.compress(b"x" * (64 << 20))  # 64 MiB in about 64 KiB
    answer = httpx2.Response(
        200, stream=httpx2.ByteStream(bomb), headers={"Content-Encoding": "gzip"}
    )
    transport = AsyncGuardedTransport(policy, inner=httpx2.MockTransport(lambda r: answer))

    async def get() -> None:
        async with httpx2.AsyncClient(transport=transport) as client:
            await client.get("http://127.0.0.1:8080/")

    with pytest.raises(ResponseTooLarge, match="larger than 1048576 bytes"):
        asyncio.run(get())
