from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("inference.api.urls")),
    path("client/v4/", include("inference.compat.urls")),
    # The browser playground (sign-in, model chooser, live output) at the root.
    path("", include("inference.playground.urls")),
]
