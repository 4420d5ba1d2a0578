from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse_lazy
from django.views.decorators.csrf import ensure_csrf_cookie

from ..serializers import RunSerializer
from ..services.access import visible_runs
from .forms import playground_catalog

HISTORY_SIZE = 25


@ensure_csrf_cookie
@login_required(login_url=reverse_lazy("inference-playground:login"))
def home(request: HttpRequest) -> HttpResponse:
    # The user's own runs (not the team's): this page is a personal scratchpad.
    history = (
        visible_runs(request.user)
        .filter(user=request.user)
        .select_related("user", "team")
        .prefetch_related("media")
        .order_by("-created_at")[:HISTORY_SIZE]
    )
    # Rendered by the page's script from the API's own representation, so the
    # history and freshly finished runs look the same (cost included).
    return render(request, "inference/playground/index.html", {
        "catalog": playground_catalog(),
        "history": RunSerializer(history, many=True).data,
    })


class LoginView(auth_views.LoginView):
    template_name = "inference/playground/login.html"
    redirect_authenticated_user = True
    next_page = reverse_lazy("inference-playground:home")


class LogoutView(auth_views.LogoutView):
    next_page = reverse_lazy("inference-playground:login")
