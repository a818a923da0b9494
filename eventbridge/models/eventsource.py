"""Argo Events EventSource (``argoproj.io/v1alpha1``).

``spec`` has one map per source type; the map key is the **event name** (the CloudEvent
``subject``), the type key (``webhook``, ``github``...) is the CloudEvent ``type``. Types that
eventbridge does not run yet are kept as plain dicts and marked ``unsupported`` so lint warns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter
from pydantic import Field, field_validator

from eventbridge.models.base import ArgoModel, Finding, Manifest, unsupported

#: Argo's default for ``maxPayloadSize`` (1 MiB).
DEFAULT_MAX_PAYLOAD_SIZE = 1048576

#: Methods a webhook endpoint may declare.
WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

#: Paths every webhook port answers itself.
RESERVED_ENDPOINTS = ("/health",)


def _not_yet(type_key: str) -> Any:
    return unsupported(f"event source type {type_key} is not supported yet")


class SecretKeySelector(ArgoModel):
    """Kubernetes ``SecretKeySelector``: one key of a Secret in the EventSource's namespace."""

    name: str = ""
    key: str
    optional: bool | None = None


class BasicAuth(ArgoModel):
    username: SecretKeySelector | None = None
    password: SecretKeySelector | None = None


class EventSourceFilter(ArgoModel):
    """``filter.expression``: an expr-lang boolean evaluated on the event data before publishing."""

    expression: str | None = None


class WebhookContext(ArgoModel):
    """Argo's ``WebhookContext``: where and how an HTTP endpoint listens.

    ``port`` is a string in Argo; an integer in YAML is accepted and turned into a string.
    """

    endpoint: str = ""
    method: str = ""
    port: str = ""
    url: str = ""
    server_cert_secret: SecretKeySelector | None = None
    server_key_secret: SecretKeySelector | None = None
    metadata: dict[str, str] | None = None
    auth_secret: SecretKeySelector | None = None
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE
    basic_auth: BasicAuth | None = unsupported("webhook basicAuth is not supported yet; use authSecret")

    @field_validator("port", mode="before")
    @classmethod
    def _port_as_string(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    def check_context(self, path: str) -> list[Finding]:
        """Semantic problems of this context; ``path`` is where it sits in the manifest."""
        findings: list[Finding] = []
        if not self.endpoint:
            findings.append(Finding(f"{path}.endpoint", "endpoint is required, e.g. /push"))
        elif not self.endpoint.startswith("/"):
            findings.append(Finding(f"{path}.endpoint", f"endpoint {self.endpoint!r} must start with '/'"))
        elif self.endpoint in RESERVED_ENDPOINTS:
            findings.append(Finding(f"{path}.endpoint", f"endpoint {self.endpoint} is reserved for the health check"))
        if not self.port:
            findings.append(Finding(f"{path}.port", 'port is required, e.g. "12000"'))
        elif self.port_number() is None:
            findings.append(Finding(f"{path}.port", f"port {self.port!r} is not a number between 0 and 65535"))
        if not self.method:
            findings.append(Finding(f"{path}.method", f"method is required: one of {', '.join(WEBHOOK_METHODS)}"))
        elif self.method.upper() not in WEBHOOK_METHODS:
            findings.append(
                Finding(f"{path}.method", f"method {self.method!r} is not one of {', '.join(WEBHOOK_METHODS)}")
            )
        elif self.method != self.method.upper():
            findings.append(
                Finding(
                    f"{path}.method",
                    f"Argo compares methods case-sensitively; write {self.method.upper()!r}",
                    "warning",
                )
            )
        if self.max_payload_size <= 0:
            findings.append(Finding(f"{path}.maxPayloadSize", "maxPayloadSize must be a positive number of bytes"))
        if self.auth_secret is not None and not self.auth_secret.name:
            findings.append(Finding(f"{path}.authSecret.name", "authSecret needs the name of a Secret"))
        if (self.server_cert_secret is None) != (self.server_key_secret is None):
            missing = "serverKeySecret" if self.server_key_secret is None else "serverCertSecret"
            findings.append(
                Finding(
                    f"{path}.{missing}",
                    "serverCertSecret and serverKeySecret must be set together to serve HTTPS "
                    "(Argo would silently serve plain HTTP)",
                )
            )
        return findings

    def serves_tls(self) -> bool:
        """HTTPS is served when both ``serverCertSecret`` and ``serverKeySecret`` are set."""
        return self.server_cert_secret is not None and self.server_key_secret is not None

    def port_number(self) -> int | None:
        """``port`` as an int, or ``None`` when it is not a valid TCP port."""
        text = self.port.strip()
        if not text.isdigit():
            return None
        number = int(text)
        return number if 0 <= number <= 65535 else None


def _filter_field() -> Any:
    """``filter`` of every source type: an expr-lang expression evaluated before publishing."""
    return None


class WebhookEventSource(WebhookContext):
    """``spec.webhook.<event name>``: an inline WebhookContext plus ``filter``."""

    filter: EventSourceFilter | None = _filter_field()


_GO_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Seconds of a Go duration string (``1h30m``, ``1.5s``, ``300ms``, ``-2m``; ``0`` alone is allowed).

    Raises ValueError with Go's wording for anything else (``1d``, ``5``, ``""``).
    """
    original = text
    sign = 1.0
    if text[:1] in ("-", "+"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(f'time: invalid duration "{original}"')
    total = 0.0
    position = 0
    while position < len(text):
        match = _GO_DURATION_PART.match(text, position)
        if match is None:
            if re.match(r"\d+(?:\.\d*)?$", text[position:]):
                raise ValueError(f'time: missing unit in duration "{original}"')
            raise ValueError(f'time: invalid duration "{original}"')
        total += float(match.group(1)) * _GO_DURATION_UNITS[match.group(2)]
        position = match.end()
    return sign * total


def _check_duration(value: str, path: str, *, what: str, positive: bool = True) -> list[Finding]:
    try:
        seconds = parse_go_duration(value)
    except ValueError as exc:
        return [Finding(path, f"{what} {value!r} is not a Go duration like 90s, 1h30m or 500ms ({exc})")]
    if positive and seconds <= 0:
        return [Finding(path, f"{what} must be positive")]
    return []


class TLSConfig(ArgoModel):
    """Argo's ``TLSConfig`` for clients: CA, client certificate and key from Secrets."""

    ca_cert_secret: SecretKeySelector | None = None
    client_cert_secret: SecretKeySelector | None = None
    client_key_secret: SecretKeySelector | None = None
    insecure_skip_verify: bool = False


class SASLConfig(ArgoModel):
    """Argo's ``SASLConfig``: ``mechanism`` PLAIN (default), SCRAM-SHA-256, SCRAM-SHA-512,
    OAUTHBEARER or GSSAPI; user and password from Secrets."""

    mechanism: str = "PLAIN"
    user_secret: SecretKeySelector | None = None
    password_secret: SecretKeySelector | None = None


class Backoff(ArgoModel):
    """Argo's ``Backoff`` (kept for round trips; eventbridge retries with its own capped backoff)."""

    duration: int | str | None = None
    factor: float | str | None = None
    jitter: float | str | None = None
    steps: int | None = None


class OwnedRepositories(ArgoModel):
    """``repositories[]`` of the github source: an owner and its repository names."""

    owner: str = ""
    names: list[str] = Field(default_factory=list)


class GithubAppCreds(ArgoModel):
    private_key: SecretKeySelector | None = None
    app_id: int | None = Field(default=None, alias="appID")
    installation_id: int | None = Field(default=None, alias="installationID")


def _webhook_required(webhook: WebhookContext | None, path: str) -> list[Finding]:
    if webhook is None:
        return [Finding(f"{path}.webhook", "webhook is required: {endpoint, port, method}")]
    return webhook.check_context(f"{path}.webhook")


class GithubEventSource(ArgoModel):
    """``spec.github.<event name>``: a GitHub webhook endpoint, optionally managing the hooks."""

    id: int | None = None
    webhook: WebhookContext | None = None
    owner: str = ""
    repository: str = ""
    events: list[str] = Field(default_factory=list)
    api_token: SecretKeySelector | None = None
    webhook_secret: SecretKeySelector | None = None
    insecure: bool = False
    active: bool = False
    content_type: str = ""
    github_base_url: str = Field(default="", alias="githubBaseURL")
    github_upload_url: str = Field(default="", alias="githubUploadURL")
    delete_hook_on_finish: bool = False
    metadata: dict[str, str] | None = None
    repositories: list[OwnedRepositories] = Field(default_factory=list)
    organizations: list[str] = Field(default_factory=list)
    github_app: GithubAppCreds | None = None
    filter: EventSourceFilter | None = _filter_field()

    def owned_repositories(self) -> list[OwnedRepositories]:
        """``repositories``, or the deprecated ``owner``/``repository`` pair, as Argo reads them."""
        if self.repositories:
            return self.repositories
        if self.owner and self.repository:
            return [OwnedRepositories(owner=self.owner, names=[self.repository])]
        return []

    def manages_hooks(self) -> bool:
        """Hooks are registered when an API token (or App) and ``webhook.url`` are set (Argo's rule)."""
        has_auth = self.api_token is not None or (self.github_app is not None and self.github_app.private_key)
        return bool(has_auth and self.webhook is not None and self.webhook.url)

    def check_spec(self, path: str) -> list[Finding]:
        findings = _webhook_required(self.webhook, path)
        repos = self.owned_repositories()
        if not repos and not self.organizations:
            findings.append(Finding(f"{path}.repositories", "either repositories or organizations is required"))
        if repos and self.organizations:
            findings.append(Finding(f"{path}.organizations", "only one of repositories and organizations is allowed"))
        if self.manages_hooks() and not self.events:
            findings.append(Finding(f"{path}.events", "events must be defined to create a github webhook"))
        if self.content_type not in ("", "json", "form"):
            findings.append(Finding(f"{path}.contentType", 'content type must be "json" or "form"'))
        if bool(self.github_base_url) != bool(self.github_upload_url):
            findings.append(
                Finding(
                    f"{path}.githubBaseURL",
                    "githubBaseURL and githubUploadURL must be set together (GitHub Enterprise)",
                )
            )
        if self.owner or self.repository:
            findings.append(Finding(f"{path}.owner", "owner/repository are deprecated; use repositories", "warning"))
        app = self.github_app
        if app is not None and self.api_token is None:
            if app.private_key is None:
                findings.append(Finding(f"{path}.githubApp.privateKey", "githubApp needs privateKey (a Secret key)"))
            if not app.app_id:
                findings.append(Finding(f"{path}.githubApp.appID", "githubApp needs appID"))
            if not app.installation_id:
                findings.append(Finding(f"{path}.githubApp.installationID", "githubApp needs installationID"))
        if app is not None and self.api_token is not None:
            findings.append(
                Finding(f"{path}.githubApp", "githubApp is ignored because apiToken is set (Argo's order)", "warning")
            )
        return findings


#: GitLab hook event flags Argo accepts in ``events`` (go-gitlab AddProjectHookOptions field names).
GITLAB_HOOK_EVENTS = (
    "ConfidentialIssuesEvents", "ConfidentialNoteEvents", "DeploymentEvents", "EmojiEvents",
    "FeatureFlagEvents", "IssuesEvents", "JobEvents", "MergeRequestsEvents", "NoteEvents",
    "PipelineEvents", "PushEvents", "ReleasesEvents", "ResourceAccessTokenEvents",
    "TagPushEvents", "WikiPageEvents",
)  # fmt: skip


class GitlabEventSource(ArgoModel):
    """``spec.gitlab.<event name>``: a GitLab webhook endpoint, optionally managing the hooks."""

    webhook: WebhookContext | None = None
    project_id: str = Field(default="", alias="projectID")
    events: list[str] = Field(default_factory=list)
    access_token: SecretKeySelector | None = None
    enable_ssl_verification: bool = Field(default=False, alias="enableSSLVerification")
    gitlab_base_url: str = Field(default="", alias="gitlabBaseURL")
    delete_hook_on_finish: bool = False
    metadata: dict[str, str] | None = None
    projects: list[str] = Field(default_factory=list)
    secret_token: SecretKeySelector | None = None
    filter: EventSourceFilter | None = _filter_field()
    groups: list[str] = Field(default_factory=list)

    @field_validator("projects", "groups", mode="before")
    @classmethod
    def _ids_as_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value

    def all_projects(self) -> list[str]:
        if self.projects:
            return self.projects
        return [self.project_id] if self.project_id else []

    def manages_hooks(self) -> bool:
        return bool(self.access_token is not None and self.webhook is not None and self.webhook.url)

    def check_spec(self, path: str) -> list[Finding]:
        findings = _webhook_required(self.webhook, path)
        if self.manages_hooks():
            if not self.all_projects() and not self.groups:
                findings.append(Finding(f"{path}.projects", "projects or groups are required to create hooks"))
            if not self.events:
                findings.append(Finding(f"{path}.events", "events must be defined to create a gitlab webhook"))
        for index, event in enumerate(self.events):
            if event not in GITLAB_HOOK_EVENTS:
                findings.append(
                    Finding(
                        f"{path}.events.{index}",
                        f"unknown event {event!r}; one of {', '.join(GITLAB_HOOK_EVENTS)}",
                    )
                )
        if self.project_id:
            findings.append(Finding(f"{path}.projectID", "projectID is deprecated; use projects", "warning"))
        return findings


class BitbucketServerRepository(ArgoModel):
    project_key: str = ""
    repository_slug: str = ""


class BitbucketServerEventSource(ArgoModel):
    """``spec.bitbucketserver.<event name>``: a Bitbucket Server webhook endpoint (HMAC checked)."""

    webhook: WebhookContext | None = None
    project_key: str = ""
    repository_slug: str = ""
    projects: list[str] = Field(default_factory=list)
    repositories: list[BitbucketServerRepository] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list)
    skip_branch_refs_changed_on_open_pr: bool | None = unsupported(
        "skipBranchRefsChangedOnOpenPR needs the Bitbucket Server API and is not supported yet",
        alias="skipBranchRefsChangedOnOpenPR",
    )
    one_event_per_change: bool = False
    access_token: SecretKeySelector | None = None
    webhook_secret: SecretKeySelector | None = None
    bitbucketserver_base_url: str = Field(default="", alias="bitbucketserverBaseURL")
    delete_hook_on_finish: bool = False
    metadata: dict[str, str] | None = None
    filter: EventSourceFilter | None = _filter_field()
    tls: TLSConfig | None = None
    check_interval: str = ""

    def all_repositories(self) -> list[BitbucketServerRepository]:
        """``repositories``, or the deprecated ``projectKey``/``repositorySlug`` pair, as Argo reads them."""
        if self.repositories:
            return list(self.repositories)
        if self.project_key and self.repository_slug:
            return [BitbucketServerRepository(project_key=self.project_key, repository_slug=self.repository_slug)]
        return []

    def manages_hooks(self) -> bool:
        """Hooks are registered when ``accessToken``, ``webhook.url`` and repositories or projects are
        set (Argo's rule)."""
        return bool(
            self.access_token is not None
            and self.webhook is not None
            and self.webhook.url
            and (self.all_repositories() or self.projects)
        )

    def check_spec(self, path: str) -> list[Finding]:
        findings = _webhook_required(self.webhook, path)
        if self.manages_hooks():
            if not self.bitbucketserver_base_url:
                findings.append(
                    Finding(
                        f"{path}.bitbucketserverBaseURL",
                        "bitbucketserverBaseURL is required to manage hooks, e.g. https://bitbucket.example.com/rest",
                    )
                )
            if not self.events:
                findings.append(
                    Finding(f"{path}.events", "events must be defined to create a bitbucket server webhook")
                )
            if self.tls is not None:
                findings.append(
                    Finding(
                        f"{path}.tls",
                        "tls is not applied to the Bitbucket Server API calls yet; the system's CA store is used",
                        "warning",
                    )
                )
        for index, repo in enumerate(self.repositories):
            if not repo.project_key or not repo.repository_slug:
                findings.append(
                    Finding(f"{path}.repositories.{index}", "each repository needs projectKey and repositorySlug")
                )
        if self.check_interval:
            findings.extend(_check_duration(self.check_interval, f"{path}.checkInterval", what="checkInterval"))
        if self.project_key or self.repository_slug:
            findings.append(
                Finding(f"{path}.projectKey", "projectKey/repositorySlug are deprecated; use repositories", "warning")
            )
        return findings


class SQSEventSource(ArgoModel):
    """``spec.sqs.<event name>``: long-polls an SQS queue."""

    access_key: SecretKeySelector | None = None
    secret_key: SecretKeySelector | None = None
    session_token: SecretKeySelector | None = None
    region: str = ""
    queue: str = ""
    wait_time_seconds: int = 0
    role_arn: str | None = unsupported(
        "roleARN (assume role) is not supported yet; use accessKey/secretKey or the AWS environment",
        alias="roleARN",
    )
    json_body: bool = False
    queue_account_id: str = ""
    metadata: dict[str, str] | None = None
    dlq: bool = False
    filter: EventSourceFilter | None = _filter_field()
    endpoint: str = ""

    def check_spec(self, path: str) -> list[Finding]:
        findings: list[Finding] = []
        if not self.region:
            findings.append(Finding(f"{path}.region", "region is required, e.g. us-east-1"))
        if not self.queue:
            findings.append(Finding(f"{path}.queue", "queue (the queue name) is required"))
        if not 0 <= self.wait_time_seconds <= 20:
            findings.append(Finding(f"{path}.waitTimeSeconds", "waitTimeSeconds must be between 0 and 20"))
        if (self.access_key is None) != (self.secret_key is None):
            findings.append(Finding(f"{path}.accessKey", "accessKey and secretKey must be set together"))
        return findings


class S3Bucket(ArgoModel):
    """Argo's ``S3Bucket``: ``name`` (``key`` is kept for round trips; the minio source ignores it)."""

    key: str = ""
    name: str = ""


class S3Filter(ArgoModel):
    """Argo's ``S3Filter``: object key prefix and suffix."""

    prefix: str = ""
    suffix: str = ""


class MinioEventSource(ArgoModel):
    """``spec.minio.<event name>`` (Argo's ``S3Artifact``): MinIO bucket notifications."""

    endpoint: str = ""
    bucket: S3Bucket | None = None
    region: str = ""
    insecure: bool = False
    access_key: SecretKeySelector | None = None
    secret_key: SecretKeySelector | None = None
    events: list[str] = Field(default_factory=list)
    filter: S3Filter | None = None
    metadata: dict[str, str] | None = None
    ca_certificate: SecretKeySelector | None = None

    def check_spec(self, path: str) -> list[Finding]:
        findings: list[Finding] = []
        if self.access_key is None:
            findings.append(Finding(f"{path}.accessKey", "access key can't be empty"))
        if self.secret_key is None:
            findings.append(Finding(f"{path}.secretKey", "secret key can't be empty"))
        if not self.endpoint:
            findings.append(Finding(f"{path}.endpoint", "endpoint url can't be empty (host:port, no scheme)"))
        elif "://" in self.endpoint or "/" in self.endpoint:
            findings.append(
                Finding(
                    f"{path}.endpoint",
                    f"endpoint {self.endpoint!r} must be host:port without scheme or path; "
                    "set insecure: true for plain HTTP",
                )
            )
        if self.bucket is None or not self.bucket.name:
            findings.append(Finding(f"{path}.bucket.name", "bucket name can't be empty"))
        for index, name in enumerate(self.events):
            if not name.startswith("s3:"):
                findings.append(
                    Finding(
                        f"{path}.events.{index}",
                        f"unknown event {name!r}; e.g. s3:ObjectCreated:* or s3:ObjectRemoved:*",
                    )
                )
        if not self.events:
            findings.append(
                Finding(
                    f"{path}.events", "events is empty: MinIO sends no notification without an event type", "warning"
                )
            )
        return findings


#: sarama ``config`` keys (lower-cased, dotted) eventbridge applies, with the aiokafka option and
#: the kind of value: ``duration`` (Go duration string, or integer nanoseconds) or ``int``/``str``.
SARAMA_CONFIG_KEYS: dict[str, tuple[str, str]] = {
    "clientid": ("client_id", "str"),
    "consumer.group.session.timeout": ("session_timeout_ms", "duration"),
    "consumer.group.heartbeat.interval": ("heartbeat_interval_ms", "duration"),
    "consumer.group.rebalance.timeout": ("rebalance_timeout_ms", "duration"),
    "consumer.fetch.min": ("fetch_min_bytes", "int"),
    "consumer.fetch.default": ("max_partition_fetch_bytes", "int"),
    "consumer.fetch.max": ("fetch_max_bytes", "int"),
    "consumer.maxwaittime": ("fetch_max_wait_ms", "duration"),
    "net.dialtimeout": ("request_timeout_ms", "duration"),
}


def sarama_config(text: str) -> tuple[dict[str, Any], list[str]]:
    """The aiokafka options of a sarama YAML ``config`` and the keys that are not applied.

    Raises ValueError for YAML that is not a mapping or a value of the wrong kind.
    """
    loaded = yaml.safe_load(text) if text.strip() else {}
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ValueError("config must be a YAML mapping of sarama settings")
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{str(key).lower()}" if prefix else str(key).lower(), item)
        else:
            flat[prefix] = value

    walk("", loaded)
    options: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in flat.items():
        known = SARAMA_CONFIG_KEYS.get(key)
        if known is None:
            ignored.append(key)
            continue
        option, kind = known
        if kind == "duration":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError(f"config {key}: expected a duration like 2s")
            seconds = parse_go_duration(value) if isinstance(value, str) else value / 1e9
            options[option] = max(1, round(seconds * 1000))
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"config {key}: expected a whole number")
            options[option] = value
        else:
            options[option] = str(value)
    return options, ignored


class KafkaConsumerGroup(ArgoModel):
    group_name: str = ""
    oldest: bool = False
    rebalance_strategy: str = ""


#: Kafka SASL mechanisms Argo accepts.
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI")


class KafkaEventSource(ArgoModel):
    """``spec.kafka.<event name>``: consumes a Kafka topic (one partition, or a consumer group)."""

    url: str = ""
    partition: str = ""
    topic: str = ""
    connection_backoff: Backoff | None = None
    tls: TLSConfig | None = None
    json_body: bool = False
    metadata: dict[str, str] | None = None
    consumer_group: KafkaConsumerGroup | None = None
    limit_events_per_second: int = 0
    version: str = ""
    sasl: SASLConfig | None = None
    filter: EventSourceFilter | None = _filter_field()
    config: str = ""
    schema_registry: dict[str, Any] | None = unsupported("schemaRegistry (Avro) is not supported yet")
    aws_msk_iam_auth: dict[str, Any] | None = unsupported("awsMskIamAuth is not supported yet")

    @field_validator("partition", mode="before")
    @classmethod
    def _partition_as_string(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    def check_spec(self, path: str) -> list[Finding]:
        findings: list[Finding] = []
        if not self.url.strip():
            findings.append(Finding(f"{path}.url", "url is required: host:port[,host:port...]"))
        if not self.topic:
            findings.append(Finding(f"{path}.topic", "topic is required"))
        if self.consumer_group is None:
            if not self.partition.strip().isdigit():
                findings.append(
                    Finding(f"{path}.partition", "partition (a number) is required when consumerGroup is not set")
                )
        else:
            if not self.consumer_group.group_name:
                findings.append(Finding(f"{path}.consumerGroup.groupName", "groupName is required"))
            strategy = self.consumer_group.rebalance_strategy
            if strategy not in ("", "range", "roundrobin", "sticky"):
                findings.append(
                    Finding(
                        f"{path}.consumerGroup.rebalanceStrategy",
                        f"unknown rebalanceStrategy {strategy!r}; Argo falls back to range",
                        "warning",
                    )
                )
        if self.limit_events_per_second < 0:
            findings.append(Finding(f"{path}.limitEventsPerSecond", "limitEventsPerSecond must not be negative"))
        if self.sasl is not None:
            if self.sasl.mechanism.upper() not in KAFKA_SASL_MECHANISMS[:3]:
                findings.append(
                    Finding(
                        f"{path}.sasl.mechanism",
                        f"SASL mechanism {self.sasl.mechanism!r} is not supported; use PLAIN, SCRAM-SHA-256 "
                        "or SCRAM-SHA-512",
                    )
                )
            if self.sasl.user_secret is None or self.sasl.password_secret is None:
                findings.append(Finding(f"{path}.sasl", "sasl needs userSecret and passwordSecret"))
        if self.config:
            try:
                _, ignored = sarama_config(self.config)
            except (ValueError, yaml.YAMLError) as exc:
                findings.append(Finding(f"{path}.config", f"config is not valid: {exc}"))
            else:
                if ignored:
                    findings.append(
                        Finding(
                            f"{path}.config",
                            f"sarama settings not applied by eventbridge: {', '.join(sorted(ignored))}",
                            "warning",
                        )
                    )
        if self.connection_backoff is not None:
            findings.append(
                Finding(
                    f"{path}.connectionBackoff",
                    "connectionBackoff is ignored: eventbridge reconnects with its own capped backoff",
                    "warning",
                )
            )
        if self.version:
            findings.append(
                Finding(f"{path}.version", "version is ignored: the client negotiates the API version", "warning")
            )
        return findings


class CatchupConfiguration(ArgoModel):
    enabled: bool = False
    max_duration: str = ""


class ConfigMapPersistence(ArgoModel):
    name: str = ""
    create_if_not_exist: bool = False


class EventPersistence(ArgoModel):
    """Calendar ``persistence``: in cluster mode the last fire is kept in ``configMap`` (Argo's
    layout); the embedded mode keeps it in its state directory (lint says so)."""

    catchup: CatchupConfiguration | None = None
    config_map: ConfigMapPersistence | None = None

    def catchup_enabled(self) -> bool:
        return self.catchup is not None and self.catchup.enabled


#: RFC 5545 EXDATE prefix of ``exclusionDates`` entries.
EXDATE_PREFIX = "EXDATE:"


def parse_exclusion_dates(values: list[str]) -> list[date]:
    """Dates of ``EXDATE:20060102T150405Z[,...]`` entries (others are ignored, as Argo does)."""
    out: list[date] = []
    for value in values:
        if not value.startswith(EXDATE_PREFIX):
            continue
        for item in value[len(EXDATE_PREFIX) :].split(","):
            try:
                out.append(datetime.strptime(item + "+0000", "%Y%m%dT%H%M%SZ%z").date())
            except ValueError:
                raise ValueError(f"exclusion date {item!r} is not in the form 20060102T150405Z") from None
    return out


class CalendarEventSource(ArgoModel):
    """``spec.calendar.<event name>``: fires on a 5-field cron ``schedule`` or every ``interval``."""

    schedule: str = ""
    interval: str = ""
    exclusion_dates: list[str] = Field(default_factory=list)
    timezone: str = ""
    metadata: dict[str, str] | None = None
    persistence: EventPersistence | None = None
    filter: EventSourceFilter | None = _filter_field()

    def check_spec(self, path: str) -> list[Finding]:
        findings: list[Finding] = []
        if self.schedule:
            problem = cron_problem(self.schedule)
            if problem:
                findings.append(Finding(f"{path}.schedule", problem))
            if self.interval:
                findings.append(Finding(f"{path}.interval", "interval is ignored because schedule is set", "warning"))
        elif self.interval:
            findings.extend(_check_duration(self.interval, f"{path}.interval", what="interval"))
        else:
            findings.append(Finding(path, "calendar needs a schedule (5-field cron) or an interval (e.g. 1h)"))
        if self.timezone:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                findings.append(Finding(f"{path}.timezone", f"unknown time zone {self.timezone!r}"))
        try:
            parse_exclusion_dates(self.exclusion_dates)
        except ValueError as exc:
            findings.append(Finding(f"{path}.exclusionDates", str(exc)))
        if self.persistence is not None:
            catchup = self.persistence.catchup
            if catchup is not None and catchup.max_duration:
                findings.extend(
                    _check_duration(catchup.max_duration, f"{path}.persistence.catchup.maxDuration", what="maxDuration")
                )
            if self.persistence.config_map is not None:
                findings.append(
                    Finding(
                        f"{path}.persistence.configMap",
                        "configMap is used in cluster mode; the embedded mode keeps the last fire time in its "
                        "state directory instead",
                        "warning",
                    )
                )
        return findings


def cron_problem(schedule: str) -> str | None:
    """Why ``schedule`` is not a 5-field cron expression Argo's calendar accepts, or ``None``."""
    fields = schedule.split()
    if schedule.strip().startswith("@"):
        return f"schedule {schedule!r}: descriptors like @daily are not accepted; write 5 fields, e.g. '0 0 * * *'"
    if len(fields) != 5:
        return (
            f"schedule {schedule!r} has {len(fields)} fields; the calendar source takes exactly 5 "
            "(minute hour day-of-month month day-of-week), no seconds"
        )
    if not croniter.is_valid(schedule):
        return f"schedule {schedule!r} is not a valid cron expression"
    return None


#: fsnotify operation names a file source can watch, with Argo's numeric ``op`` value.
FILE_OPS = {"CREATE": 1, "WRITE": 2, "REMOVE": 4, "RENAME": 8, "CHMOD": 16}


class WatchPathConfig(ArgoModel):
    directory: str = ""
    path: str = ""
    path_regexp: str = ""


class FileEventSource(ArgoModel):
    """``spec.file.<event name>``: one kind of change of files in a directory."""

    event_type: str = ""
    watch_path_config: WatchPathConfig = Field(default_factory=WatchPathConfig)
    polling: bool = False
    metadata: dict[str, str] | None = None
    filter: EventSourceFilter | None = _filter_field()

    def check_spec(self, path: str) -> list[Finding]:
        findings: list[Finding] = []
        if self.event_type not in FILE_OPS:
            findings.append(
                Finding(f"{path}.eventType", f"eventType must be one of {', '.join(FILE_OPS)} (exact case)")
            )
        watch = self.watch_path_config
        where = f"{path}.watchPathConfig"
        if not watch.directory:
            findings.append(Finding(f"{where}.directory", "directory is required"))
        elif not watch.directory.startswith("/"):
            findings.append(Finding(f"{where}.directory", "directory must be an absolute file path"))
        if not watch.path and not watch.path_regexp:
            findings.append(Finding(where, "either path or pathRegexp must be specified"))
        if watch.path and watch.path_regexp:
            findings.append(Finding(where, "path and pathRegexp cannot be specified together"))
        if watch.path.startswith("/"):
            findings.append(Finding(f"{where}.path", "path must be a relative file path"))
        if watch.path_regexp:
            try:
                re.compile(watch.path_regexp)
            except re.error as exc:
                findings.append(Finding(f"{where}.pathRegexp", f"invalid regular expression: {exc}"))
        return findings


#: ``eventTypes`` of a resource event source.
RESOURCE_EVENT_TYPES = ("ADD", "UPDATE", "DELETE")
#: Label selector operations (Kubernetes' ``selection.Operator``; empty means ``=``).
LABEL_OPERATIONS = ("", "=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt")
#: Field filter operations (empty means ``==``, as Argo documents it).
FIELD_OPERATIONS = ("", "=", "==", "!=")


class ResourceSelector(ArgoModel):
    """Argo's ``Selector``: ``key``, ``operation`` (default ``==``) and ``value`` (a comma-separated list
    for ``in``/``notin``; a regular expression for field filters)."""

    key: str = ""
    operation: str | None = None
    value: str = ""


class ResourceFilter(ArgoModel):
    """``filter`` of a resource event source: name ``prefix``, ``labels`` (sent to the API server as a
    label selector), ``fields`` (gjson path + regular expression), ``createdBy`` (an RFC 3339 time:
    only objects created before it), ``afterStart`` (only changes after the source started)."""

    prefix: str | None = None
    labels: list[ResourceSelector] | None = None
    fields: list[ResourceSelector] | None = None
    created_by: str | None = None
    after_start: bool | None = None


def parse_kube_time(text: str) -> datetime:
    """An RFC 3339 time as Kubernetes writes it (``2024-05-01T10:00:00Z``), timezone-aware."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone")
    return value


class ResourceEventSource(ArgoModel):
    """``spec.resource.<event name>``: changes of Kubernetes objects of one resource (``group``,
    ``version``, ``resource`` as in the API path) in ``namespace`` (empty: all namespaces)."""

    namespace: str = ""
    filter: ResourceFilter | None = None
    group: str = ""
    version: str = ""
    resource: str = ""
    event_types: list[str] | None = None
    metadata: dict[str, str] | None = None

    def check_spec(self, path: str) -> list[Finding]:
        findings: list[Finding] = []
        if not self.version:
            findings.append(Finding(f"{path}.version", "version must be specified"))
        if not self.resource:
            findings.append(Finding(f"{path}.resource", "resource must be specified"))
        if not self.event_types:
            findings.append(Finding(f"{path}.eventTypes", "event types must be specified"))
        for index, event_type in enumerate(self.event_types or []):
            if event_type not in RESOURCE_EVENT_TYPES:
                findings.append(Finding(f"{path}.eventTypes.{index}",
                                        f"unknown event type {event_type!r}: use ADD, UPDATE or DELETE"))  # fmt: skip
        spec_filter = self.filter
        if spec_filter is None:
            return findings
        for kind, selectors, operations in (("labels", spec_filter.labels, LABEL_OPERATIONS),
                                            ("fields", spec_filter.fields, FIELD_OPERATIONS)):  # fmt: skip
            for index, selector in enumerate(selectors or []):
                where = f"{path}.filter.{kind}.{index}"
                if not selector.key:
                    findings.append(Finding(f"{where}.key", "key can't be empty for selector"))
                if (selector.operation or "") not in operations:
                    allowed = ", ".join(op for op in operations if op)
                    message = f"unknown operation {selector.operation!r}: use one of {allowed}"
                    findings.append(Finding(f"{where}.operation", message))
                if kind == "fields":
                    try:
                        re.compile(selector.value)
                    except re.error as exc:
                        findings.append(Finding(f"{where}.value", f"invalid regular expression: {exc}"))
        if spec_filter.created_by:
            try:
                parse_kube_time(spec_filter.created_by)
            except ValueError:
                findings.append(Finding(f"{path}.filter.createdBy",
                                        "createdBy must be an RFC 3339 time such as 2024-05-01T10:00:00Z"))  # fmt: skip
        return findings


class EventSourceSpec(ArgoModel):
    """Argo's EventSourceSpec: deployment settings plus one map per source type."""

    event_bus_name: str | None = None
    template: dict[str, Any] | None = None
    service: dict[str, Any] | None = None
    replicas: int | None = None

    webhook: dict[str, WebhookEventSource] | None = None

    minio: dict[str, MinioEventSource] | None = None
    calendar: dict[str, CalendarEventSource] | None = None
    file: dict[str, FileEventSource] | None = None
    resource: dict[str, ResourceEventSource] | None = None
    amqp: dict[str, dict[str, Any]] | None = _not_yet("amqp")
    kafka: dict[str, KafkaEventSource] | None = None
    mqtt: dict[str, dict[str, Any]] | None = _not_yet("mqtt")
    nats: dict[str, dict[str, Any]] | None = _not_yet("nats")
    sns: dict[str, dict[str, Any]] | None = _not_yet("sns")
    sqs: dict[str, SQSEventSource] | None = None
    pub_sub: dict[str, dict[str, Any]] | None = _not_yet("pubSub")
    github: dict[str, GithubEventSource] | None = None
    gitlab: dict[str, GitlabEventSource] | None = None
    hdfs: dict[str, dict[str, Any]] | None = _not_yet("hdfs")
    slack: dict[str, dict[str, Any]] | None = _not_yet("slack")
    storage_grid: dict[str, dict[str, Any]] | None = _not_yet("storageGrid")
    azure_events_hub: dict[str, dict[str, Any]] | None = _not_yet("azureEventsHub")
    stripe: dict[str, dict[str, Any]] | None = _not_yet("stripe")
    emitter: dict[str, dict[str, Any]] | None = _not_yet("emitter")
    redis: dict[str, dict[str, Any]] | None = _not_yet("redis")
    nsq: dict[str, dict[str, Any]] | None = _not_yet("nsq")
    pulsar: dict[str, dict[str, Any]] | None = _not_yet("pulsar")
    generic: dict[str, dict[str, Any]] | None = _not_yet("generic")
    bitbucketserver: dict[str, BitbucketServerEventSource] | None = None
    bitbucket: dict[str, dict[str, Any]] | None = _not_yet("bitbucket")
    redis_stream: dict[str, dict[str, Any]] | None = _not_yet("redisStream")
    azure_service_bus: dict[str, dict[str, Any]] | None = _not_yet("azureServiceBus")
    azure_queue_storage: dict[str, dict[str, Any]] | None = _not_yet("azureQueueStorage")
    sftp: dict[str, dict[str, Any]] | None = _not_yet("sftp")
    gerrit: dict[str, dict[str, Any]] | None = _not_yet("gerrit")
    mns: dict[str, dict[str, Any]] | None = _not_yet("mns")

    #: Python field names of the per-type maps, in Argo's order.
    SOURCE_FIELDS: ClassVar[tuple[str, ...]] = (
        "minio", "calendar", "file", "resource", "webhook", "amqp", "kafka", "mqtt", "nats", "sns",
        "sqs", "pub_sub", "github", "gitlab", "hdfs", "slack", "storage_grid", "azure_events_hub",
        "stripe", "emitter", "redis", "nsq", "pulsar", "generic", "bitbucketserver", "bitbucket",
        "redis_stream", "azure_service_bus", "azure_queue_storage", "sftp", "gerrit", "mns",
    )  # fmt: skip

    @classmethod
    def type_key(cls, field_name: str) -> str:
        """Argo's spec key (e.g. ``pubSub``) for a Python field name (``pub_sub``)."""
        return cls.model_fields[field_name].alias or field_name

    def sources(self) -> Iterator[tuple[str, str, Any]]:
        """Every configured event as ``(type key, event name, spec)``, in Argo's type order."""
        for field_name in self.SOURCE_FIELDS:
            entries = getattr(self, field_name)
            if entries:
                key = self.type_key(field_name)
                for event_name, spec in entries.items():
                    yield key, event_name, spec


class EventSource(Manifest):
    kind: Literal["EventSource"] = "EventSource"
    spec: EventSourceSpec = Field(default_factory=EventSourceSpec)
    status: dict[str, Any] | None = None

    def check(self) -> list[Finding]:
        """Duplicate event names across types, per-type problems (``check_spec``), webhook route clashes."""
        findings: list[Finding] = []
        first_seen: dict[str, str] = {}
        routes: dict[tuple[str, str], str] = {}
        for type_key, event_name, spec in self.spec.sources():
            path = f"spec.{type_key}.{event_name}"
            if event_name in first_seen:
                findings.append(
                    Finding(
                        path,
                        f"event name {event_name!r} is also used under spec.{first_seen[event_name]}; "
                        "event names must be unique across all types of one EventSource",
                    )
                )
            else:
                first_seen[event_name] = type_key
            context: WebhookContext | None = None
            context_path = path
            if isinstance(spec, WebhookContext):
                findings.extend(spec.check_context(path))
                context = spec
            else:
                check_spec = getattr(spec, "check_spec", None)
                if callable(check_spec):
                    findings.extend(check_spec(path))
                nested = getattr(spec, "webhook", None)
                if isinstance(nested, WebhookContext):
                    context, context_path = nested, f"{path}.webhook"
            if context is not None and context.endpoint and context.port:
                route = (context.port.strip(), context.endpoint)
                if route in routes:
                    findings.append(
                        Finding(
                            f"{context_path}.endpoint",
                            f"port {route[0]} endpoint {route[1]} is already used by {routes[route]}",
                        )
                    )
                else:
                    routes[route] = context_path
        return findings
