from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from .views import MediaView, ModelsView, RunViewSet

app_name = "inference-api"

router = SimpleRouter()
router.register("runs", RunViewSet, basename="run")

urlpatterns = [
    path("media/<str:pk>/", MediaView.as_view(), name="media-detail"),
    path("models/", ModelsView.as_view(), name="models"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="inference-api:schema"), name="docs"),
    *router.urls,
]
