"""Runs, their media, the callers' API keys and teams."""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db import models
from django.utils import timezone

from ..conf import inference_settings


class Team(models.Model):
    slug = models.SlugField(unique=True, help_text="Short identifier used in the API and CLI.")
    name = models.CharField(max_length=200)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="TeamMembership", related_name="inference_teams"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class TeamMembership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        ADMIN = "admin", "Admin"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inference_memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="inference_membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class APIKey(models.Model):
    """A caller's API key.  Only a SHA-256 digest is stored: keys carry 256 bits
    of randomness, so a slow password hash would add latency to every request
    without adding security.  The visible ``prefix`` finds the row; the digest is
    compared in constant time."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inference_api_keys"
    )
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="api_keys",
        help_text="Runs made with this key are attributed to this team.",
    )
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name or 'key'} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


TERMINAL_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED)


class Run(models.Model):
    class Source(models.TextChoices):
        API = "api", "REST API"
        COMPAT = "compat", "Cloudflare-compatible endpoint"
        CLI = "cli", "Command line"
        ADMIN = "admin", "Admin"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="inference_runs"
    )
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    api_key = models.ForeignKey(
        APIKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    client_ip = models.GenericIPAddressField(null=True, blank=True)

    model = models.CharField(max_length=200, help_text="Workers AI model name, e.g. @cf/meta/llama-3.1-8b-instruct-fp8.")
    task = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    stream = models.BooleanField(default=False, help_text="Streamed generation (SSE upstream).")

    input = models.JSONField(help_text="Model input as sent upstream, media replaced by references.")
    result = models.JSONField(null=True, blank=True, help_text="Normalized result; media referenced by URL.")
    error_code = models.IntegerField(null=True, blank=True, help_text="Cloudflare error code, if any.")
    error_message = models.TextField(blank=True, default="")
    error_retryable = models.BooleanField(null=True, blank=True)
    usage = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    queue_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Created → started.")
    upstream_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time spent in upstream calls.")
    deadline_at = models.DateTimeField(null=True, blank=True, help_text="The run fails if still running then.")
    # Written only by the worker that holds the current attempt: lets the sweeper
    # tell a crashed attempt from a live one.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    webhook = models.URLField(max_length=2000, blank=True, default="")
    webhook_events = models.JSONField(default=list, blank=True)

    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    request_hash = models.CharField(max_length=64, blank=True, default="")

    # Cost (inference.pricing): written in the transaction that finishes the run.
    # cost_usd NULL means unknown (cost_reason says why), never $0.
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    cost_neurons = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    cost_estimated = models.BooleanField(default=False, help_text="Cost from locally counted usage.")
    cost_reason = models.CharField(max_length=300, blank=True, default="")
    cost_prices = models.JSONField(default=list, blank=True, help_text="Ids of the Price rows applied.")
    # Budget reservation made at submission; counts against budgets while the run
    # is queued or running (inference.budgets).
    reserved_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="inference_run_user_created"),
            models.Index(fields=["team", "-created_at"], name="inference_run_team_created"),
            models.Index(fields=["status", "created_at"], name="inference_run_status_created"),
            models.Index(fields=["model", "-created_at"], name="inference_run_model_created"),
            models.Index(fields=["-created_at"], name="inference_run_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="inference_run_idempotency_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.model} {self.status} ({self.id})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def error(self) -> dict | None:
        if not self.error_message:
            return None
        return {
            "code": self.error_code,
            "message": self.error_message,
            "retryable": bool(self.error_retryable),
        }


_SAFE_EXTENSION = re.compile(r"[a-z0-9]{1,8}")


class RunMediaStorage(Storage):
    """The storage of ``INFERENCE["MEDIA_STORAGE"]``, looked up on every call.
    Django evaluates a FileField's storage once, when the model class loads;
    this proxy makes every process (web, worker, purge) open run media in the
    alias configured now, so a non-default alias works everywhere."""

    @property
    def backend(self) -> Storage:
        return storages[inference_settings.MEDIA_STORAGE]

    def open(self, name, mode="rb"):
        return self.backend.open(name, mode)

    def save(self, name, content, max_length=None):
        return self.backend.save(name, content, max_length=max_length)

    def get_valid_name(self, name):
        return self.backend.get_valid_name(name)

    def get_alternative_name(self, file_root, file_ext):
        return self.backend.get_alternative_name(file_root, file_ext)

    def get_available_name(self, name, max_length=None):
        return self.backend.get_available_name(name, max_length=max_length)

    def generate_filename(self, filename):
        return self.backend.generate_filename(filename)

    def path(self, name):
        return self.backend.path(name)

    def delete(self, name):
        return self.backend.delete(name)

    def exists(self, name):
        return self.backend.exists(name)

    def listdir(self, path):
        return self.backend.listdir(path)

    def size(self, name):
        return self.backend.size(name)

    def url(self, name):
        return self.backend.url(name)

    def get_accessed_time(self, name):
        return self.backend.get_accessed_time(name)

    def get_created_time(self, name):
        return self.backend.get_created_time(name)

    def get_modified_time(self, name):
        return self.backend.get_modified_time(name)


_run_media_storage = RunMediaStorage()


def run_media_storage() -> Storage:
    """``RunMedia.file``'s storage (a callable, so migrations do not freeze it)."""
    return _run_media_storage


def media_upload_to(instance: RunMedia, filename: str) -> str:
    # Generated names only: nothing from the upload reaches the file system path.
    # Even the extension (chosen by store_media from the sniffed type) must be a
    # short alphanumeric word, so no separator or ".." can ever get through.
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    if not _SAFE_EXTENSION.fullmatch(extension):
        extension = "bin"
    created = instance.run.created_at if instance.run_id else timezone.now()
    return f"inference/{created:%Y/%m/%d}/{instance.run_id}/{instance.id}.{extension}"


class RunMedia(models.Model):
    class Role(models.TextChoices):
        INPUT = "input", "Input"
        OUTPUT = "output", "Output"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="media")
    role = models.CharField(max_length=8, choices=Role.choices)
    field = models.CharField(max_length=64, help_text="Input field or result key the file belongs to.")
    encoding = models.CharField(
        max_length=16, blank=True, default="",
        help_text="For inputs: how the bytes are sent upstream (uint8 or base64).",
    )
    file = models.FileField(upload_to=media_upload_to, storage=run_media_storage, max_length=300)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "run media"
        verbose_name_plural = "run media"
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.role} {self.field} ({self.content_type}, {self.size} B)"
