"""The TLS server context every proxy-engine service uses (dataplane/services/serving.py):
TLS 1.2 only, AWS's cipher suites in AWS's order, the client's SNI name kept — checked
by handshakes in memory against an ordinary client."""
from __future__ import annotations

import ssl

import pytest

from dataplane.lab import ca
from dataplane.services.serving import ConfigError, tls_context


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, name: str):
    """(server side, client side) SSL objects after a handshake over memory BIOs."""
    bios = [ssl.MemoryBIO() for _ in range(4)]
    server = server_ctx.wrap_bio(bios[0], bios[1], server_side=True)
    client = client_ctx.wrap_bio(bios[2], bios[3], server_hostname=name)
    for _ in range(10):
        for side, out, peer_in in ((client, bios[3], bios[0]), (server, bios[1], bios[2])):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            data = out.read()
            if data:
                peer_in.write(data)
        if server.cipher() and client.cipher() and not bios[0].pending and not bios[2].pending:
            break
    return server, client


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return ca.make(str(tmp_path_factory.mktemp("ca")), "t", "web", ["web.example.com"])


def test_aws_order_tls12_only_and_the_sni_name(certs) -> None:
    server_ctx = tls_context(certs["cert"], certs["key"], "tls")
    client_ctx = ssl.create_default_context(cafile=certs["ca"])
    server, client = handshake(server_ctx, client_ctx, "web.example.com")
    # a default client offers AES256-GCM first; AWS's order answers AES128-GCM
    assert server.cipher()[:2] == ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2")
    assert server.sni_name == "web.example.com"
    client13 = ssl.create_default_context(cafile=certs["ca"])
    client13.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises(ssl.SSLError):
        handshake(server_ctx, client13, "web.example.com")


def test_a_missing_key_names_the_field(certs, tmp_path) -> None:
    with pytest.raises(ConfigError) as refused:
        tls_context(certs["cert"], str(tmp_path / "none.key"), "listeners[1].tls")
    assert refused.value.path == "listeners[1].tls"
