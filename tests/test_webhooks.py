"""Webhooks: Standard Webhooks signatures checked by the ``standardwebhooks``
package, retries keeping the webhook-id, redirects not followed, SSRF refusals."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from inference.models import Run, WebhookDelivery, WebhookSecret
from inference.services import webhooks

from .conftest import wait_for_status

LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"


class Receiver:
    """A webhook receiver inside the test process.  ``plan(type, n)`` returns the
    (status, headers) to answer the n-th request (1-based) of a message type."""

    def __init__(self, plan=None) -> None:
        self.requests: list[dict] = []
        self.plan = plan or (lambda kind, n: (200, {}))
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                kind = json.loads(body).get("type")
                with receiver._lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    n = sum(1 for r in receiver.requests if json.loads(r["body"]).get("type") == kind)
                status, headers = receiver.plan(kind, n)
                payload = f"answer {status} to {kind} #{n}".encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def of_type(self, kind: str) -> list[dict]:
        return [r for r in self.requests if json.loads(r["body"])["type"] == kind]

    def wait_for(self, kind: str, count: int, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.of_type(kind)) < count:
            assert time.monotonic() < deadline, f"{kind}: {len(self.of_type(kind))} of {count} requests"
            time.sleep(0.05)
        return self.of_type(kind)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(plan=None) -> Receiver:
        made.append(Receiver(plan))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def allow_loopback(settings):
    settings.INFERENCE = {**settings.INFERENCE, "WEBHOOK_ALLOWED_HOSTS": ["127.0.0.1"], "WEBHOOK_BACKOFF_BASE": 0.05}


def verify(secret: str, request: dict) -> dict:
    headers = {k.lower(): v for k, v in request["headers"].items()}
    return Webhook(secret).verify(request["body"], headers)


@pytest.mark.worker
class TestDeliveryWithWorker:
    def test_signed_deliveries_and_retries_keep_the_id(self, api, user, worker, receiver, allow_loopback):
        # The completed message fails twice (500, then 503) before it is accepted.
        hook = receiver(lambda kind, n: (500 + 3 * (n - 1), {}) if kind == "run.completed" and n < 3 else (200, {}))
        response = api.post(
            "/api/runs/",
            {"model": LLAMA, "input": {"prompt": "hi"}, "webhook": hook.url, "webhook_events": ["start", "completed"]},
            format="json",
        )
        assert response.status_code == 202, response.json()
        run = wait_for_status(response.json()["id"])
        completed = hook.wait_for("run.completed", 3)
        start = hook.wait_for("run.start", 1)
        secret = WebhookSecret.objects.get(user=user).secret
        assert secret.startswith("whsec_")
        # An independent implementation accepts every signature…
        for request in completed + start:
            verify(secret, request)
        # …and rejects a tampered body.
        tampered = dict(completed[-1], body=completed[-1]["body"].replace("succeeded", "failed"))
        with pytest.raises(WebhookVerificationError):
            verify(secret, tampered)
        ids = {r["headers"]["webhook-id"] for r in completed}
        assert len(ids) == 1, "retries must keep the webhook-id"
        assert start[0]["headers"]["webhook-id"] not in ids
        assert {r["body"] for r in completed} == {completed[0]["body"]}, "retries resend the same body"
        payload = json.loads(completed[-1]["body"])
        assert payload["data"]["id"] == str(run.pk) and payload["data"]["status"] == "succeeded"
        assert payload["data"]["result"]["response"] == run.result["response"]

        time.sleep(0.3)  # the last attempt's row is written after the answer
        attempts = list(WebhookDelivery.objects.filter(run=run, event="completed").order_by("attempt"))
        assert [(a.attempt, a.status_code, a.succeeded) for a in attempts] == [
            (1, 500, False), (2, 503, False), (3, 200, True)
        ]
        assert {a.webhook_id for a in attempts} == ids
        assert all(a.duration_ms is not None for a in attempts)
        assert attempts[0].response_excerpt == "answer 500 to run.completed #1"
        assert attempts[0].error == "Receiver answered HTTP 500."
        assert attempts[2].completed_at >= attempts[0].completed_at


@pytest.mark.django_db(transaction=True)
class TestDeliveryInProcess:
    def _run(self, user, url, events=("completed",)) -> Run:
        return Run.objects.create(
            user=user, model=LLAMA, task="text-generation", input={"prompt": "x"}, status="succeeded",
            result={"response": "ok"}, webhook=url, webhook_events=list(events),
        )

    def test_redirect_is_not_followed_nor_retried(self, user, eager, receiver, allow_loopback):
        hook = receiver(lambda kind, n: (302, {"Location": "http://127.0.0.1:9/elsewhere"}))
        run = self._run(user, hook.url)
        webhooks.dispatch(run.pk, "completed")
        assert len(hook.requests) == 1
        (delivery,) = WebhookDelivery.objects.filter(run=run)
        assert delivery.status_code == 302 and delivery.succeeded is False
        assert "Redirect" in delivery.error

    def test_4xx_is_not_retried_and_max_attempts_caps_5xx(self, user, eager, receiver, allow_loopback, settings):
        settings.INFERENCE = {**settings.INFERENCE, "WEBHOOK_MAX_ATTEMPTS": 3}
        gone = receiver(lambda kind, n: (410, {}))
        webhooks.dispatch(self._run(user, gone.url).pk, "completed")
        assert len(gone.requests) == 1
        down = receiver(lambda kind, n: (502, {}))
        run = self._run(user, down.url)
        webhooks.dispatch(run.pk, "completed")
        assert len(down.requests) == 3
        assert list(WebhookDelivery.objects.filter(run=run).values_list("attempt", flat=True)) == [1, 2, 3]

    def test_target_is_checked_again_at_delivery(self, user, eager, receiver, settings):
        # Allowed when submitted, no longer allowed when delivered (as after a
        # DNS change): nothing is sent and the refusal is logged.
        hook = receiver()
        run = self._run(user, hook.url)
        settings.INFERENCE = {**settings.INFERENCE, "WEBHOOK_ALLOWED_HOSTS": []}
        webhooks.dispatch(run.pk, "completed")
        assert hook.requests == []
        (delivery,) = WebhookDelivery.objects.filter(run=run)
        assert delivery.succeeded is False and "non-public" in delivery.error

    def test_events_not_asked_for_are_not_sent(self, user, eager, receiver, allow_loopback):
        hook = receiver()
        run = self._run(user, hook.url, events=("start",))
        assert webhooks.dispatch(run.pk, "completed") is None
        assert hook.requests == [] and not WebhookDelivery.objects.exists()

    def test_unreachable_receiver_is_retried(self, user, eager, allow_loopback, settings):
        settings.INFERENCE = {**settings.INFERENCE, "WEBHOOK_MAX_ATTEMPTS": 2, "WEBHOOK_TIMEOUT": 2}
        run = self._run(user, "http://127.0.0.1:9/closed-port")
        webhooks.dispatch(run.pk, "completed")
        attempts = list(WebhookDelivery.objects.filter(run=run).order_by("attempt"))
        assert [a.attempt for a in attempts] == [1, 2]
        assert all("ConnectionError" in a.error and a.status_code is None for a in attempts)
        assert len({a.webhook_id for a in attempts}) == 1

    def test_streamed_run_sends_partial_then_final_output(self, api, user, eager, emulator, receiver, allow_loopback, settings):
        settings.INFERENCE = {**settings.INFERENCE, "WEBHOOK_OUTPUT_INTERVAL": 0.05}
        emulator.configure(token_delay_ms=30)
        hook = receiver()
        response = api.post(
            "/api/runs/",
            {"model": LLAMA, "input": {"prompt": "stream it", "max_tokens": 30, "stream": True},
             "webhook": hook.url, "webhook_events": ["output", "completed"]},
            format="json", HTTP_PREFER="wait=20",
        )
        assert response.status_code == 201, response.json()
        final_text = response.json()["result"]["response"]
        outputs = [json.loads(r["body"])["data"] for r in hook.of_type("run.output")]
        assert len(outputs) >= 3, "expected throttled partial outputs and a final one"
        partial = [o["result"]["response"] for o in outputs if o["result"].get("partial")]
        assert partial and all(final_text.startswith(text) for text in partial)
        assert outputs[-1]["result"]["response"] == final_text and outputs[-1]["status"] == "succeeded"
        (completed,) = hook.of_type("run.completed")
        verify(WebhookSecret.objects.get(user=user).secret, completed)


@pytest.mark.embedded
@pytest.mark.django_db
class TestSubmissionChecks:
    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1/hook",
            "http://localhost:8000/hook",
            "http://10.0.0.5/hook",
            "http://172.16.3.4/hook",
            "http://192.168.1.1/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.100.100.200/latest/meta-data/",
            "http://[::1]/hook",
            "http://[fd00:ec2::254]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://0.0.0.0/hook",
            "ftp://example.org/hook",
        ],
    )
    def test_non_public_targets_are_refused(self, api, emulator, url):
        response = api.post(
            "/api/runs/", {"model": LLAMA, "input": {"prompt": "x"}, "webhook": url}, format="json"
        )
        assert response.status_code == 400, response.json()
        assert "webhook" in response.json()
        assert Run.objects.count() == 0 and emulator.requests == []

    def test_allow_list_admits_a_named_address(self, api, settings):
        settings.INFERENCE = {**settings.INFERENCE, "WEBHOOK_ALLOWED_HOSTS": ["127.0.0.0/8"]}
        response = api.post(
            "/api/runs/", {"model": LLAMA, "input": {"prompt": "x"}, "webhook": "http://127.0.0.1:9/hook"},
            format="json",
        )
        assert response.status_code == 202, response.json()
        assert Run.objects.get().webhook_events == ["completed"]

    def test_events_without_webhook_are_refused(self, api):
        response = api.post(
            "/api/runs/", {"model": LLAMA, "input": {"prompt": "x"}, "webhook_events": ["completed"]}, format="json"
        )
        assert response.status_code == 400 and "webhook_events" in response.json()

    def test_public_address_passes_the_check(self):
        webhooks.check_target("https://93.184.215.14/hook")  # a literal public address: no DNS needed

    def test_secret_is_shown_to_its_owner_only(self, api, other_api, user):
        mine = api.get("/api/webhook-secret/").json()["secret"]
        theirs = other_api.get("/api/webhook-secret/").json()["secret"]
        assert mine.startswith("whsec_") and mine != theirs
        rotated = api.post("/api/webhook-secret/").json()["secret"]
        assert rotated != mine and api.get("/api/webhook-secret/").json()["secret"] == rotated

    def test_admin_shows_deliveries_on_the_run_and_masks_others_secrets(self, user, django_user_model, client):
        from django.contrib.auth.models import Permission

        staff = django_user_model.objects.create_user("carol", password="pw", is_staff=True)
        staff.user_permissions.set(Permission.objects.filter(content_type__app_label="inference"))
        run = Run.objects.create(user=user, model=LLAMA, task="text-generation", input={}, webhook="https://93.184.215.14/h")
        WebhookDelivery.objects.create(run=run, event="completed", webhook_id="msg_abc123", url=run.webhook,
                                       status_code=503, response_excerpt="upstream down", succeeded=False)
        alice_secret = webhooks.secret_for(user)
        own_secret = webhooks.secret_for(staff)
        client.force_login(staff)
        page = client.get(f"/admin/inference/run/{run.pk}/change/").content.decode()
        assert "msg_abc123" in page and "upstream down" in page and "503" in page
        others = client.get(f"/admin/inference/webhooksecret/{alice_secret.pk}/change/").content.decode()
        assert alice_secret.secret not in others and alice_secret.masked in others
        listing = client.get("/admin/inference/webhooksecret/").content.decode()
        assert alice_secret.secret not in listing and own_secret.secret not in listing
        mine = client.get(f"/admin/inference/webhooksecret/{own_secret.pk}/change/").content.decode()
        assert own_secret.secret in mine
        deliveries = client.get("/admin/inference/webhookdelivery/?succeeded__exact=0")
        assert deliveries.status_code == 200 and "msg_abc123" in deliveries.content.decode()
