from django.core.management.base import BaseCommand, CommandError

from inference.crypto import DecryptionError
from inference.models import CloudflareAccount, WebhookSecret
from inference.services.access import rotate_credentials


class Command(BaseCommand):
    help = (
        "Re-encrypt stored Cloudflare credentials and webhook signing secrets with the first key of "
        "INFERENCE['ENCRYPTION_KEYS']. Run after putting a new key in front; drop "
        "the old key only afterwards."
    )

    def handle(self, **options):
        total = CloudflareAccount.objects.count() + WebhookSecret.objects.count()
        try:
            changed = rotate_credentials()
        except DecryptionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Re-encrypted {changed} of {total} stored secret(s) "
            "(Cloudflare accounts and webhook signing secrets)."
        )
