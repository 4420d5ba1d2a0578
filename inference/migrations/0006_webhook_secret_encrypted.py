"""Webhook signing secrets encrypted at rest: the plaintext column is replaced
by a Fernet ciphertext (same keys as team Cloudflare credentials).  Existing
secrets are encrypted in place, so receivers keep verifying."""

from django.db import migrations, models


def encrypt_existing(apps, schema_editor):
    from inference import crypto

    WebhookSecret = apps.get_model("inference", "WebhookSecret")
    for row in WebhookSecret.objects.exclude(secret="").only("pk", "secret").iterator():
        WebhookSecret.objects.filter(pk=row.pk).update(secret_ciphertext=crypto.encrypt(row.secret))


def decrypt_existing(apps, schema_editor):
    from inference import crypto

    WebhookSecret = apps.get_model("inference", "WebhookSecret")
    for row in WebhookSecret.objects.exclude(secret_ciphertext="").only("pk", "secret_ciphertext").iterator():
        WebhookSecret.objects.filter(pk=row.pk).update(secret=crypto.decrypt(row.secret_ciphertext))


class Migration(migrations.Migration):

    dependencies = [
        ("inference", "0005_cost"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhooksecret",
            name="secret_ciphertext",
            field=models.TextField(
                blank=True, default="", editable=False, help_text="Encrypted signing secret (Fernet)."
            ),
        ),
        # Nullable/blank while both columns exist, so the reverse step can refill it.
        migrations.AlterField(
            model_name="webhooksecret",
            name="secret",
            field=models.CharField(max_length=120, blank=True, default="", editable=False),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
        migrations.RemoveField(
            model_name="webhooksecret",
            name="secret",
        ),
    ]
