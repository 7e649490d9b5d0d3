"""The index: who talks and which conversations exist. Payloads live in the session store."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

slug_validator = RegexValidator(r"^[a-z0-9][a-z0-9-]{0,62}$", "Use lowercase letters, digits and hyphens.")


LIMIT_HELP = "Empty: the deployment's default (AK_LIMITS__%s). 0: unlimited."


def new_webhook_secret() -> str:
    return secrets.token_hex(32)


class Tenant(models.Model):
    slug = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200, blank=True)
    #: Signs the webhooks of this tenant's runs (HMAC-SHA256); rotate it in the admin.
    webhook_secret = models.CharField(max_length=64, default=new_webhook_secret)
    created_at = models.DateTimeField(default=timezone.now)
    # Limits of this tenant (infra.limits): empty, the deployment's default (AK_LIMITS__*); 0, unlimited.
    limit_agents = models.PositiveIntegerField(null=True, blank=True, help_text=LIMIT_HELP % "AGENTS")
    limit_secrets = models.PositiveIntegerField(null=True, blank=True, help_text=LIMIT_HELP % "SECRETS")
    limit_sessions = models.PositiveIntegerField(null=True, blank=True, help_text=LIMIT_HELP % "SESSIONS")
    limit_concurrent_runs = models.PositiveIntegerField(null=True, blank=True, help_text=LIMIT_HELP % "CONCURRENT_RUNS")
    limit_event_streams = models.PositiveIntegerField(null=True, blank=True, help_text=LIMIT_HELP % "EVENT_STREAMS")
    limit_schedules = models.PositiveIntegerField(null=True, blank=True, help_text=LIMIT_HELP % "SCHEDULES")
    #: Not refused over it: its further queued runs wait their turn (``agents_app.runs.dispatch``).
    limit_runs_in_flight = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=LIMIT_HELP % "RUNS_IN_FLIGHT"
        + " Queued runs handed to the workers at once; the others wait their turn, oldest first.",
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class ApiKey(models.Model):
    """A tenant's API key. Only a SHA-256 of the key is kept; the key is shown once."""

    PREFIX = "ak_"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.tenant})"

    @staticmethod
    def hash(raw_key: str) -> str:
        # Keys carry 256 bits of entropy, so a fast hash is enough; nothing to brute-force.
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @classmethod
    def generate(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class EndUser(models.Model):
    """A user of a tenant's product, known by the tenant's own id for them."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="users")
    external_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "external_id"], name="enduser_unique_per_tenant")]
        ordering = ["external_id"]

    def __str__(self) -> str:
        return self.external_id


class Thread(models.Model):
    """A conversation as people see it: who, what about, whether it is archived."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        ARCHIVED = "archived"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="threads")
    user = models.ForeignKey(EndUser, null=True, blank=True, on_delete=models.SET_NULL, related_name="threads")
    title = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "status", "-created_at"], name="thread_tenant_status")]

    def __str__(self) -> str:
        return self.title or f"thread {self.pk}"


class Session(models.Model):
    """The index row of a stored session: its id within the tenant, counts and activity."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="sessions")
    thread = models.OneToOneField(Thread, on_delete=models.CASCADE, related_name="session")
    session_id = models.CharField(max_length=200)
    user = models.ForeignKey(EndUser, null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions")
    message_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "session_id"], name="session_unique_per_tenant")]
        indexes = [
            models.Index(fields=["tenant", "-last_activity_at"], name="session_tenant_activity"),
            models.Index(fields=["tenant", "user"], name="session_tenant_user"),
            models.Index(fields=["expires_at"], name="session_expiry"),
        ]
        ordering = ["-last_activity_at"]

    def __str__(self) -> str:
        return self.session_id


class TenantStaff(models.Model):
    """Makes a staff user an operator of one tenant: the admin shows them that tenant only.

    Superusers need no membership (they see every tenant); a staff user without one sees nothing.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_staff")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="staff")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "tenant staff member"
        verbose_name_plural = "tenant staff"
        ordering = ["tenant", "user"]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant}"
