"""Agents a tenant configured, and the runs that happened."""

from __future__ import annotations

import uuid

from django.core.validators import MinValueValidator, RegexValidator
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


#: A queued run handed to the broker, or a run a worker executes (not a sync run: its request does).
IN_FLIGHT = models.Q(is_async=True, held=False, status__in=["queued", "running"])
#: A queued run waiting for its tenant's turn (``runs.dispatch``).
HELD = models.Q(held=True, status="queued")


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
    #: Last time the run's task was handed to the broker (while it is ``held``: when it was queued).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    #: A queued run waiting in the database for its tenant's turn, not yet handed to the broker
    #: (its tenant had ``runs_in_flight`` runs in flight): ``agents_app.runs.dispatch``.
    held = models.BooleanField(
        default=False, help_text="Queued, waiting in the database for its tenant's turn (AK_LIMITS__RUNS_IN_FLIGHT)."
    )
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
    #: Tokens the model reported for the run: ``{"prompt_tokens", "completion_tokens"}`` (and
    #: ``"cached_tokens"`` where the model server reports prompt tokens it had cached).
    usage = models.JSONField(null=True, blank=True)
    #: The schedule whose firing made it (``GET /schedules/<id>/runs``); its runs stay when it goes.
    schedule = models.ForeignKey(
        "Schedule", on_delete=models.SET_NULL, null=True, blank=True, related_name="runs", db_index=False
    )
    #: The model its agent's config named when its adapter was built ("" for an agent without one):
    #: what its tokens are priced by (``agents_app.usage.record``).
    model = models.CharField(max_length=200, blank=True)
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
            models.Index(fields=["schedule", "-created_at"], name="run_schedule"),
            models.Index(fields=["session"], condition=models.Q(status="paused"), name="run_paused_session"),
            # The tenants' queue (``runs.dispatch``): a tenant's runs in flight, its held runs oldest
            # first. Conditions on booleans only: SQLite uses a partial index only when the query
            # repeats its condition, and Django binds a status as a parameter.
            models.Index(
                fields=["tenant", "status"], condition=models.Q(is_async=True, held=False), name="run_in_flight"
            ),
            models.Index(fields=["tenant", "enqueued_at"], condition=models.Q(held=True), name="run_held"),
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


class Schedule(models.Model):
    """A tenant's agent run on a schedule: a cron expression read in ``time_zone``, or once ``at``.
    Each firing is a queued run of ``message`` on ``session_id`` (a new session each time when
    blank), with the schedule's webhook. ``next_run_at`` is when it fires next (null: never again,
    or disabled); a firing claims it with one conditional UPDATE (``agents_app.schedules.firing``),
    so each due time makes one run whatever the number of beat and worker processes."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="schedules")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="schedules")
    message = models.TextField()
    session_id = models.CharField(max_length=200, blank=True, help_text="Blank: a new session each firing.")
    cron = models.CharField(max_length=255, blank=True, help_text='Five fields, e.g. "*/5 * * * *"; or blank.')
    time_zone = models.CharField(max_length=63, default="UTC", help_text="The IANA time zone the cron is read in.")
    at = models.DateTimeField(null=True, blank=True, help_text="One firing at this time (when there is no cron).")
    webhook_url = models.URLField(max_length=2048, blank=True)
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: Why the last due time made no run (its agent deleted, a limit of the tenant), or blank.
    last_error = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["next_run_at"], condition=models.Q(enabled=True), name="schedule_due"),
            models.Index(fields=["tenant", "-created_at"], name="schedule_tenant"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cron="", at__isnull=False) | (~models.Q(cron="") & models.Q(at__isnull=True)),
                name="schedule_cron_or_at",
            )
        ]

    def __str__(self) -> str:
        return f"{self.agent} {self.cron}" if self.cron else f"{self.agent} at {self.at}"


class ModelPrice(models.Model):
    """What the operators pay for a model, per million tokens, in ``PricingSettings``' currency.
    Costs are computed from this table when usage is read, so an edit applies to past usage too."""

    model = models.CharField(max_length=200, unique=True, help_text="The model name agents' configs send.")
    prompt_per_million = models.DecimalField(max_digits=14, decimal_places=6, validators=[MinValueValidator(0)])
    completion_per_million = models.DecimalField(max_digits=14, decimal_places=6, validators=[MinValueValidator(0)])
    #: The price of prompt tokens the model server reports as cached; empty: the prompt price.
    cached_per_million = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return self.model


class PricingSettings(models.Model):
    """The price table's currency: one row (``pk=1``), made on first read."""

    currency = models.CharField(
        max_length=3,
        default="USD",
        validators=[RegexValidator(r"^[A-Z]{3}$", "An ISO 4217 code, e.g. USD, EUR.")],
        help_text="The currency of every price in the table, and of the costs shown and answered.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "pricing settings"

    def __str__(self) -> str:
        return f"prices in {self.currency}"

    @classmethod
    def current(cls) -> PricingSettings:
        return cls.objects.get_or_create(pk=1)[0]


class UsageDaily(models.Model):
    """What a tenant's runs used, per day (of their end, UTC), agent, session and model: kept as
    each run ends, in the transaction of its end (``agents_app.usage.record``), so that reading
    usage never scans runs. Agent and session are names, not keys: a deleted session's or agent's
    usage stays counted."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_rows")
    day = models.DateField()
    agent = models.CharField(max_length=63)
    session_id = models.CharField(max_length=200)
    model = models.CharField(max_length=200, blank=True)
    runs = models.PositiveBigIntegerField(default=0)
    succeeded = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)
    cancelled = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    #: Counts per bucket of ``agents_app.usage.histogram``: ``{"duration": [...], "wait": [...]}``.
    timings = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "agent", "session_id", "model"], name="usage_daily_unique_row"
            )
        ]
        verbose_name_plural = "usage daily"

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.day} {self.agent} {self.model}"


class Budget(models.Model):
    """A cap on what a tenant's runs use in a UTC window (a day, or a calendar month): tokens
    (prompt + completion), spend (priced by ``ModelPrice``), or both. ``agent`` blank: the whole
    tenant's runs; a name: that agent's only. A run that starts over a budget is refused
    (``agents_app.budgets``); operators set them in the console."""

    class Period(models.TextChoices):
        DAY = "day", "day (UTC)"
        MONTH = "month", "month (UTC)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="budgets")
    agent = models.CharField(
        max_length=63,
        blank=True,
        validators=[agent_name_validator],
        help_text="An agent's name: this budget counts and refuses its runs only. Blank: the whole tenant.",
    )
    period = models.CharField(max_length=5, choices=Period.choices, default=Period.DAY)
    max_tokens = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Prompt and completion tokens in the window. Empty: no cap on tokens."
    )
    max_spend = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="In the price table's currency. Empty: no cap on spend.",
    )
    alert_webhook_url = models.URLField(
        max_length=2048, blank=True, help_text="POSTed an event when use crosses 80 % and 100 % of a cap."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "agent", "period"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "agent", "period"], name="budget_unique_per_scope"),
            models.CheckConstraint(
                condition=models.Q(max_tokens__isnull=False) | models.Q(max_spend__isnull=False),
                name="budget_caps_something",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} {self.agent or '(all agents)'} per {self.period}"

    @property
    def caps(self) -> str:
        """Its caps as an alert records them: a change of a cap re-arms the window's alerts."""
        spend = "-" if self.max_spend is None else f"{self.max_spend:f}"
        return f"{'-' if self.max_tokens is None else self.max_tokens} tokens, {spend} spend"


class BudgetAlert(models.Model):
    """A budget's use crossed ``threshold`` % of a cap in the window starting ``window_start``:
    one row per budget, window, threshold and caps (the alert is sent once, and once more should an
    operator change a cap), with the use then and its webhook delivery (when the budget has a URL)."""

    class Delivery(models.TextChoices):
        NONE = "none"
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    window_start = models.DateField()
    threshold = models.PositiveSmallIntegerField()
    caps = models.CharField(max_length=80, blank=True, help_text="The budget's caps when it alerted.")
    used_tokens = models.PositiveBigIntegerField()
    used_spend = models.DecimalField(max_digits=20, decimal_places=6)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    webhook_status = models.CharField(max_length=10, choices=Delivery.choices, default=Delivery.NONE)
    webhook_attempts = models.PositiveSmallIntegerField(default=0)
    webhook_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "window_start", "threshold", "caps"], name="budget_alert_once")
        ]

    def __str__(self) -> str:
        return f"{self.budget}: {self.threshold} % on {self.window_start}"
