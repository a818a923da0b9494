"""Helpers shared by the source tests (imported by name; pytest puts this folder on sys.path)."""

from __future__ import annotations

from typing import Any

from eventbridge.errors import NotFoundError
from eventbridge.models.eventsource import EventSource


class DictReferences:
    """References answered from a dict (namespace, name, key) -> value."""

    def __init__(self, secrets: dict[tuple[str, str, str], str] | None = None) -> None:
        self.secrets = dict(secrets or {})

    def secret(self, namespace: str, name: str, key: str) -> str:
        try:
            return self.secrets[(namespace, name, key)]
        except KeyError:
            raise NotFoundError(f"secret {namespace}/{name} has no key {key!r}") from None

    def config_map(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"configmap {namespace}/{name} not found")


def eventsource(name: str, webhooks: dict[str, dict[str, Any]], **spec: Any) -> EventSource:
    return EventSource.model_validate(
        {"metadata": {"name": name, "namespace": "team"}, "spec": {"webhook": webhooks, **spec}}
    )


def make_eventsource(name: str, namespace: str = "team", **spec: Any) -> EventSource:
    """An EventSource with ``spec`` given by type key, e.g. ``github={"push": {...}}``."""
    return EventSource.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": spec})


async def wait_for(predicate: Any, within: float = 10.0, interval: float = 0.02) -> None:
    """Poll ``predicate()`` (sync or async) until it is truthy; fail after ``within`` seconds."""
    import asyncio
    import inspect

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


def self_signed_cert(ip: str = "127.0.0.1") -> tuple[str, str]:
    """A self-signed certificate for ``ip`` (valid one day) and its EC private key, both PEM."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem
