"""Secret and ConfigMap references answered from loaded v1 manifests (embedded mode).

``ManifestReferences(objects)`` implements :class:`eventbridge.models.base.References` from the
v1 Secret and ConfigMap manifests among ``objects`` (other kinds are ignored). A Secret's
``stringData`` wins over its base64 ``data`` for the same key, as in Kubernetes.

Optional environment fallback: pass ``environ`` (e.g. ``os.environ``) and a key that no loaded
manifest provides is read from ``EVENTBRIDGE_SECRET_<NAME>_<KEY>`` (ConfigMaps:
``EVENTBRIDGE_CONFIGMAP_<NAME>_<KEY>``), where NAME and KEY are upper-cased and every character
other than A-Z and 0-9 becomes ``_`` (secret ``github-access``, key ``token`` ->
``EVENTBRIDGE_SECRET_GITHUB_ACCESS_TOKEN``). The namespace is not part of the variable name.
Loaded manifests always win over the environment.

Error messages name the namespace, object and key, never a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from eventbridge.errors import InvalidError, NotFoundError
from eventbridge.models.base import Manifest
from eventbridge.models.core import ConfigMap, Secret, decode_secret_value

_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


def env_var_name(kind: str, name: str, key: str) -> str:
    """Environment variable consulted for ``kind`` (``SECRET``/``CONFIGMAP``), object and key."""
    return f"EVENTBRIDGE_{kind}_{_NOT_ALNUM.sub('_', name.upper())}_{_NOT_ALNUM.sub('_', key.upper())}"


class ManifestReferences:
    """Resolves ``{name, key}`` selectors against loaded Secret/ConfigMap manifests."""

    def __init__(self, objects: Iterable[Manifest], *, environ: Mapping[str, str] | None = None) -> None:
        self._secrets: dict[tuple[str, str], Secret] = {}
        self._config_maps: dict[tuple[str, str], ConfigMap] = {}
        self._environ = environ
        for obj in objects:
            if isinstance(obj, Secret):
                self._secrets[(obj.namespace, obj.name)] = obj
            elif isinstance(obj, ConfigMap):
                self._config_maps[(obj.namespace, obj.name)] = obj

    def secret(self, namespace: str, name: str, key: str) -> str:
        where = f"secret {namespace}/{name}"
        found = self._secrets.get((namespace, name))
        if found is not None:
            if found.string_data and key in found.string_data:
                return found.string_data[key]
            if found.data and key in found.data:
                decoded = decode_secret_value(found.data[key])
                if decoded is None:
                    raise InvalidError(f"{where}: key {key!r} in data is not valid base64 (or not UTF-8)")
                return decoded
        from_env = self._from_env("SECRET", name, key)
        if from_env is not None:
            return from_env
        if found is None:
            raise NotFoundError(f"{where} not found{self._hint('SECRET', name, key)}")
        raise NotFoundError(f"{where} has no key {key!r}{self._hint('SECRET', name, key)}")

    def config_map(self, namespace: str, name: str, key: str) -> str:
        where = f"configmap {namespace}/{name}"
        found = self._config_maps.get((namespace, name))
        if found is not None and found.data and key in found.data:
            return found.data[key]
        from_env = self._from_env("CONFIGMAP", name, key)
        if from_env is not None:
            return from_env
        if found is None:
            raise NotFoundError(f"{where} not found{self._hint('CONFIGMAP', name, key)}")
        raise NotFoundError(f"{where} has no key {key!r}{self._hint('CONFIGMAP', name, key)}")

    def _from_env(self, kind: str, name: str, key: str) -> str | None:
        if self._environ is None:
            return None
        return self._environ.get(env_var_name(kind, name, key))

    def _hint(self, kind: str, name: str, key: str) -> str:
        what = "Secret" if kind == "SECRET" else "ConfigMap"
        hint = f"; define a v1 {what} manifest in the loaded paths"
        if self._environ is not None:
            hint += f" or set {env_var_name(kind, name, key)}"
        return hint
