"""Models, one module per area; everything importable from ``inference.models``."""

from .accounts import CloudflareAccount  # noqa: F401, E402
from .catalog import CatalogModel  # noqa: F401
from .pricing import Budget, Price, UsageDaily  # noqa: F401,E402
from .runs import (  # noqa: F401
    TERMINAL_STATUSES,
    APIKey,
    Run,
    RunMedia,
    RunStatus,
    Team,
    TeamMembership,
    media_upload_to,
)
from .webhooks import WebhookDelivery, WebhookEvent, WebhookSecret, new_webhook_secret  # noqa: F401
