from __future__ import annotations

import re

from django.db.models import Prefetch, prefetch_related_objects
from django.http import FileResponse, Http404, StreamingHttpResponse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import catalog, catalog_db
from ..exceptions import AlreadyFinished, SubmissionError
from ..models import Run, RunMedia
from ..parsing import SafeJSONParser
from ..services import events
from ..services.access import visible_media, visible_runs
from ..services.execution import wait_for_run
from ..services.lifecycle import cancel_run
from ..services.submission import Submission, submit_run
from .filters import RunFilter
from .pagination import RunCursorPagination
from .schema import (
    DETAIL,
    ERROR_RESPONSES,
    MULTIPART_REQUEST,
    NOT_FOUND,
    SUBMIT_EXAMPLES,
    SUBMIT_PARAMETERS,
    run_request_schema,
)
from .serializers import (
    ModelListSerializer,
    ModelSpecSerializer,
    RunCreateSerializer,
    RunSerializer,
)

MAX_WAIT_SECONDS = 60
IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")
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


@extend_schema_view(
    list=extend_schema(responses={200: RunSerializer(many=True), 400: ERROR_RESPONSES[400], 401: NOT_FOUND[401], 404: NOT_FOUND[404]}),
    retrieve=extend_schema(responses={200: RunSerializer, **NOT_FOUND}),
)
class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = RunSerializer
    filterset_class = RunFilter
    pagination_class = RunCursorPagination
    parser_classes = [SafeJSONParser, MultiPartParser, FormParser]
    # Any segment: a malformed id is a JSON 404 from DRF, not Django's HTML 404.
    lookup_value_regex = "[^/]+"

    def perform_content_negotiation(self, request, force=False):
        # EventSource sends "Accept: text/event-stream", which no DRF renderer
        # offers: answer errors (401/404) in JSON instead of 406.  The stream
        # itself is a StreamingHttpResponse and is never rendered.
        if self.action == "events":
            return (JSONRenderer(), JSONRenderer.media_type)
        return super().perform_content_negotiation(request, force)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Run.objects.none()
        return (
            visible_runs(self.request.user)
            .select_related("user", "team")
            .prefetch_related("media")
        )

    @extend_schema(
        request={"application/json": run_request_schema(), "multipart/form-data": MULTIPART_REQUEST},
        parameters=SUBMIT_PARAMETERS,
        examples=SUBMIT_EXAMPLES,
        responses={
            201: OpenApiResponse(RunSerializer, description="Finished within Prefer: wait."),
            202: OpenApiResponse(RunSerializer, description="Accepted; Location points at the run."),
            **ERROR_RESPONSES,
        },
    )
    def create(self, request: Request) -> Response:
        idempotency_key = request.headers.get("Idempotency-Key", "")
        if idempotency_key and not IDEMPOTENCY_KEY_RE.fullmatch(idempotency_key):
            # Stored and compared in the database: printable ASCII only (a NUL
            # byte alone would make PostgreSQL fail the request with a 500).
            return Response(
                {"Idempotency-Key": ["Must be 1-255 printable ASCII characters."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        serializer = RunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        uploads = {}
        for name in MEDIA_FIELDS:
            upload = request.FILES.get(name)
            if upload is not None:
                uploads[name] = (upload.read(), upload.content_type)
        if "input" not in data and not uploads:
            return Response({"input": ["This field is required."]}, status=status.HTTP_400_BAD_REQUEST)
        submission = Submission(
            model=data["model"],
            input=data.get("input") or {},
            task=data.get("task"),
            metadata=data.get("metadata") or {},
            webhook=data.get("webhook") or "",
            webhook_events=data.get("webhook_events") or [],
            uploads=uploads,
            idempotency_key=idempotency_key,
            source=Run.Source.API,
            client_ip=client_ip(request),
        )
        api_key = request.auth if hasattr(request.auth, "prefix") else None
        try:
            run, created = submit_run(request.user, submission, api_key=api_key)
        except SubmissionError as exc:
            return Response(exc.errors, status=exc.status)
        wait = parse_prefer_wait(request.headers.get("Prefer"))
        if wait:
            run = wait_for_run(run.pk, wait)
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
        headers = {"Location": body["urls"]["self"],
                   **catalog_db.lifecycle_headers(catalog_db.resolve_model(run.model))}
        if run.is_terminal:
            return Response(body, status=status.HTTP_201_CREATED, headers=headers)
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)

    @extend_schema(request=None, responses={
        200: RunSerializer, **NOT_FOUND,
        409: OpenApiResponse(DETAIL, description="Already finished."),
    })
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        run = self.get_object()
        try:
            run = cancel_run(run)
        except AlreadyFinished:
            return Response(
                {"detail": f"Run already finished ({run.status})."}, status=status.HTTP_409_CONFLICT
            )
        return Response(RunSerializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(responses={
        (200, "text/event-stream"): OpenApiResponse(
            str, description="Events `status`, `output` (text deltas), `done` (the final run)."
        ),
        **NOT_FOUND,
    })
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk=None):
        run = self.get_object()
        # A reconnecting EventSource sends the last id it saw: resume after it.
        last_id = request.headers.get("Last-Event-ID", "")
        response = StreamingHttpResponse(
            events.run_events(
                run.pk, serialize=lambda r: RunSerializer(r).data,
                last_event_id=int(last_id) if last_id.isdigit() else 0,
            ),
            content_type="text/event-stream",
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response


class MediaView(APIView):
    @extend_schema(responses={(200, "*/*"): OpenApiResponse(bytes, description="The file, with its content type."), **NOT_FOUND})
    def get(self, request: Request, pk) -> FileResponse:
        media = get_object_or_404(visible_media(request.user), pk=pk)
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
    @extend_schema(
        parameters=[
            OpenApiParameter("task", str, enum=list(catalog.TASKS)),
            OpenApiParameter("include_retired", bool, description="Also list retired and delisted models."),
        ],
        responses={200: ModelListSerializer, 400: ERROR_RESPONSES[400], 401: NOT_FOUND[401]},
    )
    def get(self, request: Request) -> Response:
        task = request.query_params.get("task") or None
        if task is not None and task not in catalog.TASKS:
            return Response(
                {"task": [f"Unknown task {task!r}. Valid: {', '.join(catalog.TASKS)}."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        include_retired = request.query_params.get("include_retired", "").lower() in ("1", "true", "yes")
        models = catalog_db.list_models(task, include_retired=include_retired)
        return Response(
            {"count": len(models), "results": ModelSpecSerializer(models, many=True).data}
        )

