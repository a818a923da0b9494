"""The ``kafka`` trigger: produces one record per firing (Argo's KafkaTrigger), with aiokafka.

* ``url``: comma-separated brokers; ``topic``; ``partition`` (Argo deprecated it; when set the
  record goes to that partition, otherwise the key decides).
* The value is built from ``payload`` parameters (Argo's ConstructPayload; required, as in Argo);
  ``partitioningKey`` is the record key (parameterize it with ``parameters`` ``dest:
  partitioningKey``); ``headers`` and ``secureHeaders`` (from Secrets/ConfigMaps) become record
  headers. ``parameters`` are applied to the trigger object first.
* ``requiredAcks`` (0, 1 or -1 = all; default 1), ``compress`` (gzip), ``flushFrequency`` (ms of
  linger, default 500 as Argo), ``tls``. ``sasl`` and ``schemaRegistry`` are not supported.
* Unlike Argo's asynchronous producer, a firing waits until the broker acknowledged the record,
  so a success means the record is stored (effectively at-least-once end to end). Connection
  problems are temporary errors (retried per ``retryStrategy``).

One producer per (trigger, brokers, settings) is kept while the sensor runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from eventbridge.errors import PermanentError, TemporaryError
from eventbridge.models.sensor import KafkaTrigger
from eventbridge.triggers._secrets import REDACTED, secure_header_value, ssl_context
from eventbridge.triggers.base import TRIGGERS, TriggerAction, TriggerCall, TriggerOutcome

CONNECT_TIMEOUT = 15.0


@TRIGGERS.register("kafka")
class KafkaTriggerAction(TriggerAction):
    key = "kafka"

    _producers: dict[tuple[Any, ...], AIOKafkaProducer]

    def _spec(self, call: TriggerCall) -> KafkaTrigger:
        spec = call.template.kafka
        if spec is None:
            raise PermanentError(f"trigger {call.template.name}: kafka is not set")
        if spec.parameters:
            spec = KafkaTrigger.model_validate(call.apply_params(spec.dump(), spec.parameters))
        if not spec.url or not spec.topic:
            raise PermanentError(f"trigger {call.template.name}: kafka.url and kafka.topic are required")
        if spec.payload is None:
            raise PermanentError(f"trigger {call.template.name}: payload parameters are not specified")
        return spec

    def _headers(self, spec: KafkaTrigger, *, reveal: bool) -> list[tuple[str, bytes]]:
        headers = [(name, value.encode()) for name, value in (spec.headers or {}).items()]
        for header in spec.secure_headers or []:
            value = secure_header_value(self, header) if reveal else REDACTED
            headers.append((header.name, value.encode()))
        return headers

    async def preview(self, call: TriggerCall) -> Any:
        spec = self._spec(call)
        value = call.build_payload(spec.payload)
        return {
            "url": spec.url,
            "topic": spec.topic,
            "partition": spec.partition,
            "key": spec.partitioning_key,
            "headers": {name: raw.decode() for name, raw in self._headers(spec, reveal=False)},
            "value": value.decode(errors="replace"),
        }

    async def _producer(self, spec: KafkaTrigger) -> AIOKafkaProducer:
        if not hasattr(self, "_producers"):
            self._producers = {}
        acks: int | str = spec.required_acks if spec.required_acks is not None else 1
        if acks == -1:
            acks = "all"
        if acks not in (0, 1, "all"):
            raise PermanentError(f"kafka.requiredAcks {spec.required_acks} is not 0, 1 or -1")
        tls = ssl_context(self, spec.tls) if spec.tls is not None else None
        settings = (spec.url, acks, bool(spec.compress), spec.flush_frequency, spec.tls.dump() if spec.tls else None)
        producer = self._producers.get(settings)
        if producer is not None:
            return producer
        options: dict[str, Any] = {
            "bootstrap_servers": [part.strip() for part in spec.url.split(",") if part.strip()],
            "acks": acks,
            "linger_ms": spec.flush_frequency if spec.flush_frequency is not None else 500,
            "request_timeout_ms": int(CONNECT_TIMEOUT * 1000),
        }
        if spec.compress:
            options["compression_type"] = "gzip"
        if tls is not None:
            options["security_protocol"] = "SSL"
            if tls is not False and tls is not True:
                options["ssl_context"] = tls
        producer = AIOKafkaProducer(**options)
        try:
            await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT)
        except (KafkaError, OSError, TimeoutError) as err:
            await producer.stop()
            raise TemporaryError(f"kafka {spec.url}: cannot connect: {type(err).__name__}: {err}", 1.0) from None
        self._producers[settings] = producer
        return producer

    async def execute(self, call: TriggerCall) -> TriggerOutcome:
        spec = self._spec(call)
        value = call.build_payload(spec.payload)
        headers = self._headers(spec, reveal=True)
        key = spec.partitioning_key.encode() if spec.partitioning_key is not None else None
        producer = await self._producer(spec)
        try:
            metadata = await producer.send_and_wait(
                spec.topic, value=value, key=key, headers=headers or None, partition=spec.partition
            )
        except KafkaError as err:
            raise TemporaryError(f"kafka {spec.topic}: {type(err).__name__}: {err}", 1.0) from None
        where = f"{metadata.topic}/{metadata.partition}@{metadata.offset}"
        return TriggerOutcome(f"produced a record to {where}", (f"KafkaRecord {where}",))

    async def close(self) -> None:
        for producer in getattr(self, "_producers", {}).values():
            await producer.stop()
        self._producers = {}
