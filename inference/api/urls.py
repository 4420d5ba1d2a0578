from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from .usage import UsageView
from .views import MediaView, ModelsView, RunViewSet
from .webhooks import WebhookSecretView

app_name = "inference-api"

router = SimpleRouter()
router.register("runs", RunViewSet, basename="run")

urlpatterns = [
    path("media/<str:pk>/", MediaView.as_view(), name="media-detail"),
    path("models/", ModelsView.as_view(), name="models"),
    path("webhook-secret/", WebhookSecretView.as_view(), name="webhook-secret"),
    path("usage/", UsageView.as_view(), name="usage"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="inference-api:schema"), name="docs"),
    *router.urls,
]
