from __future__ import annotations

from django.db.models import Prefetch, prefetch_related_objects
from django.http import FileResponse, Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import catalog, events, services
from ..models import Run, RunMedia
from .filters import RunFilter
from .pagination import RunCursorPagination
from .serializers import ModelSpecSerializer, RunCreateSerializer, RunSerializer

MAX_WAIT_SECONDS = 60
MEDIA_FIELDS = ("image", "audio", "mask")


def parse_prefer_wait(header: str | None) -> float | None:
    """``Prefer: wait`` (the maximum) or ``Prefer: wait=N`` (N seconds, capped)."""
    if not header:
        return None
    for part in header.split(","):
        token = part.strip().lower()
        if token == "wait":
            return float(MAX_WAIT_SECONDS)
        if token.startswith("wait="):
            try:
                return max(0.0, min(float(token[5:]), MAX_WAIT_SECONDS))
            except ValueError:
                return None
    return None


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = RunSerializer
    filterset_class = RunFilter
    pagination_class = RunCursorPagination
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        return (
            services.visible_runs(self.request.user)
            .select_related("user", "team")
            .prefetch_related("media")
        )

    @extend_schema(request=RunCreateSerializer, responses={201: RunSerializer, 202: RunSerializer})
    def create(self, request: Request) -> Response:
        serializer = RunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        uploads = {}
        for name in MEDIA_FIELDS:
            upload = request.FILES.get(name)
            if upload is not None:
                uploads[name] = (upload.read(), upload.content_type)
        submission = services.Submission(
            model=data["model"],
            input=data["input"],
            task=data.get("task"),
            metadata=data.get("metadata") or {},
            webhook=data.get("webhook") or "",
            webhook_events=data.get("webhook_events") or [],
            uploads=uploads,
            idempotency_key=request.headers.get("Idempotency-Key", "")[:255],
            source=Run.Source.API,
            client_ip=client_ip(request),
        )
        api_key = request.auth if hasattr(request.auth, "prefix") else None
        try:
            run, created = services.submit_run(request.user, submission, api_key=api_key)
        except services.SubmissionError as exc:
            return Response(exc.errors, status=exc.status)
        wait = parse_prefer_wait(request.headers.get("Prefer"))
        if wait:
            run = services.wait_for_run(run.pk, wait)
        if wait or not created or uploads or run.input != data["input"]:
            # Re-read only when the row can differ from what we hold: a wait, an
            # idempotent replay, stored media.  The plain 202 path skipped this
            # query and serializes the run it just inserted (a third of its time).
            run = self.get_queryset().get(pk=run.pk)
        else:
            # A run just inserted without uploads has no media rows yet: tell the
            # serializer so instead of asking the database (an empty Prefetch
            # queryset is resolved without a query).
            prefetch_related_objects([run], Prefetch("media", queryset=RunMedia.objects.none()))
        body = RunSerializer(run, context={"request": request}).data
        headers = {"Location": body["urls"]["self"]}
        if run.is_terminal:
            return Response(body, status=status.HTTP_201_CREATED, headers=headers)
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)

    @extend_schema(request=None, responses={200: RunSerializer, 409: None})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        run = self.get_object()
        try:
            run = services.cancel_run(run)
        except services.AlreadyFinished:
            return Response(
                {"detail": f"Run already finished ({run.status})."}, status=status.HTTP_409_CONFLICT
            )
        return Response(RunSerializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(responses={(200, "text/event-stream"): str})
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk=None):
        run = self.get_object()
        response = StreamingHttpResponse(
            events.run_events(run.pk, serialize=lambda r: RunSerializer(r).data),
            content_type="text/event-stream",
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response


class MediaView(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, pk) -> FileResponse:
        media = get_object_or_404(services.visible_media(request.user), pk=pk)
        try:
            handle = media.file.open("rb")
        except FileNotFoundError as exc:
            raise Http404("Media file missing from storage.") from exc
        response = FileResponse(handle, content_type=media.content_type)
        response["Content-Length"] = str(media.size)
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, max-age=3600"
        return response


class ModelsView(APIView):
    @extend_schema(parameters=[OpenApiParameter("task", str, enum=list(catalog.TASKS))])
    def get(self, request: Request) -> Response:
        task = request.query_params.get("task")
        models = [m for m in catalog.MODELS if not task or m.task == task]
        return Response(
            {"count": len(models), "results": ModelSpecSerializer(models, many=True).data}
        )

