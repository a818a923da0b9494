"""Secrets and TLS for trigger clients (http, kafka): values come from
:class:`eventbridge.models.base.References` and never appear in messages."""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

from eventbridge.errors import EventBridgeError, PermanentError
from eventbridge.models.sensor import ClientTLS, SecretKeySelector, SecureHeader
from eventbridge.triggers.base import TriggerAction

REDACTED = "<redacted>"


def secret_value(call_action: TriggerAction, selector: SecretKeySelector | None, what: str) -> str:
    if selector is None or not selector.name or not selector.key:
        raise PermanentError(f"{what}: give a secret name and key")
    try:
        return call_action.services.references.secret(call_action.sensor.namespace, selector.name, selector.key)
    except EventBridgeError as err:
        raise PermanentError(f"{what}: {err}") from None


def secure_header_value(action: TriggerAction, header: SecureHeader) -> str:
    source = header.value_from
    what = f"secureHeader {header.name!r}"
    if source is None:
        raise PermanentError(f"{what}: valueFrom is required")
    if source.secret_key_ref is not None:
        return secret_value(action, source.secret_key_ref, what)
    selector = source.config_map_key_ref
    if selector is None or not selector.name or not selector.key:
        raise PermanentError(f"{what}: give valueFrom.secretKeyRef or configMapKeyRef")
    try:
        return action.services.references.config_map(action.sensor.namespace, selector.name, selector.key)
    except EventBridgeError as err:
        raise PermanentError(f"{what}: {err}") from None


def ssl_context(action: TriggerAction, tls: ClientTLS | None) -> ssl.SSLContext | bool:
    """The TLS settings for aiohttp: ``True`` (default verification), ``False`` (skip) or a context."""
    if tls is None:
        return True
    if tls.insecure_skip_verify:
        return False
    context = ssl.create_default_context()
    if tls.ca_cert_secret is not None:
        context.load_verify_locations(cadata=secret_value(action, tls.ca_cert_secret, "tls.caCertSecret"))
    if tls.client_cert_secret is not None or tls.client_key_secret is not None:
        cert = secret_value(action, tls.client_cert_secret, "tls.clientCertSecret")
        key = secret_value(action, tls.client_key_secret, "tls.clientKeySecret")
        with tempfile.TemporaryDirectory(prefix="eventbridge-tls-") as folder:
            cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            cert_path.write_text(cert)
            key_path.write_text(key)
            cert_path.chmod(0o600)
            key_path.chmod(0o600)
            try:
                context.load_cert_chain(str(cert_path), str(key_path))
            except ssl.SSLError as err:
                raise PermanentError(f"tls: the client certificate or key is invalid: {err.reason}") from None
    return context
