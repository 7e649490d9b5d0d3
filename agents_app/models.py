"""Agents a tenant configured, and the runs that happened."""

from __future__ import annotations

import uuid

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from sessions_app.models import Session, Tenant

agent_name_validator = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", "Use letters, digits, '_', '.', '-'.")


class LiveAgents(models.Manager["Agent"]):
    """The agents that are not deleted: what the API, the admin and every lookup by name see."""

    def get_queryset(self) -> models.QuerySet[Agent]:
        return super().get_queryset().filter(deleted_at__isnull=True)


class Agent(models.Model):
    """A tenant's agent. Deleting one through the API (``agent_delete``) sets ``deleted_at``: it is
    gone from every lookup (``objects``) and its name is free again, while the runs it made keep
    it (``run.agent`` reads through ``all_objects``, the base manager)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=63, validators=[agent_name_validator])
    framework = models.CharField(max_length=63)
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = LiveAgents()
    all_objects = models.Manager()  # noqa: DJ012 - a manager (ruff reads models.X() as a field)

    class Meta:
        base_manager_name = "all_objects"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"], condition=models.Q(deleted_at__isnull=True), name="agent_unique_per_tenant"
            )
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Run(models.Model):
    """One turn of one agent on one session, from the request to the reply."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PAUSED = "paused"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    class Webhook(models.TextChoices):
        NONE = "", "no webhook"
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="runs")
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="runs")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="runs")
    message = models.TextField()
    is_async = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # null, not "": the API reports a run with no result yet as null.
    result = models.TextField(null=True, blank=True)  # noqa: DJ001
    error = models.TextField(null=True, blank=True)  # noqa: DJ001
    #: Executions started (claims): more than one only when a process died or a dependency
    #: failed mid-run; an attempt that never reached the adapter (busy session) is not counted.
    attempts = models.PositiveIntegerField(default=0)
    #: The process that runs, or ran, it: ``<celery worker name>:<pid>``, or ``web@<host>:<pid>``.
    worker = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    #: Last time the run's task was handed to the broker.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    #: Written by the worker while the run goes on; a lapsed heartbeat means the worker died.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    #: The client's ``Idempotency-Key`` and a hash of the request it came with.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    request_hash = models.CharField(max_length=64, blank=True)
    webhook_url = models.URLField(max_length=2048, blank=True)
    webhook_status = models.CharField(max_length=16, choices=Webhook.choices, blank=True)
    webhook_attempts = models.PositiveIntegerField(default=0)
    webhook_error = models.TextField(blank=True)
    #: Tokens the model reported for the run: ``{"prompt_tokens", "completion_tokens"}``.
    usage = models.JSONField(null=True, blank=True)
    #: What a paused run waits for (CONTRACT's ``pause`` object): set when it pauses, kept while
    #: its resume runs (the framework's ``resume`` is given it), replaced when it pauses again.
    pause = models.JSONField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    #: The person's answer to ``pause`` (``{"decisions": {id: {approve, message}}}`` or
    #: ``{"input": ...}``) while its resume is queued or running; None while it is paused.
    answer = models.JSONField(null=True, blank=True)
    #: How many times it was resumed: each resume commits under its own id (``commit_id``).
    resumes = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "status", "-created_at"], name="run_tenant_status"),
            models.Index(fields=["session", "-created_at"], name="run_session"),
            models.Index(fields=["status", "heartbeat_at"], name="run_status_heartbeat"),
            models.Index(fields=["session"], condition=models.Q(status="paused"), name="run_paused_session"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="run_idempotency_key_per_tenant",
            )
        ]

    def __str__(self) -> str:
        return f"{self.agent} run {self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def is_resuming(self) -> bool:
        """Whether its execution goes on from a pause (``answer`` given) rather than from its message."""
        return self.answer is not None

    @property
    def commit_id(self) -> str:
        """The id its current execution commits under in the session store (and a cancel revokes):
        the run's id, then ``<id>.<n>`` for its n-th resume, so that each is replayed, not redone."""
        return str(self.pk) if not self.resumes else f"{self.pk}.{self.resumes}"


class Secret(models.Model):
    """A value a tenant's agents use (a model provider's API key), encrypted at rest: an agent's
    config names it (``{"secret": NAME}``), only the run that uses it decrypts it."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=63, validators=[agent_name_validator])
    #: The value, encrypted with ``AK_SECRETS_KEY`` (Fernet: AES-128-CBC with HMAC-SHA256).
    ciphertext = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="secret_unique_per_tenant")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
