"""Mount under ``client/v4/`` so a Cloudflare ``base_url`` of ``<site>/client/v4`` works."""

from django.urls import path

from . import views

app_name = "inference_compat"

urlpatterns = [
    # ``path``: the model name holds slashes (``@cf/meta/…``).
    path("accounts/<str:account_id>/ai/run/<path:model_name>", views.run_model, name="run"),
]
