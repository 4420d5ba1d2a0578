from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    label = "inference"
    verbose_name = "Workers AI inference"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_migrate, post_save

        from . import (
            checks,  # noqa: F401  (registers system checks)
            jobs,  # noqa: F401  (registers the Celery tasks queue.py sends by name)
        )
        from .models import Price
        from .services.pricing import price_changed, seed_prices_after_migrate

        # post_migrate (not a data migration) so a flushed test database is re-seeded too.
        post_migrate.connect(seed_prices_after_migrate, sender=self, dispatch_uid="inference_seed_prices")
        # Submissions estimate from a per-process price cache: a price change clears it.
        post_save.connect(price_changed, sender=Price, dispatch_uid="inference_price_saved")
        post_delete.connect(price_changed, sender=Price, dispatch_uid="inference_price_deleted")
