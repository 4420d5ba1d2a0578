"""The playground: server side with Django's client, and end to end in headless
Chromium (Debian's package, driven by Playwright) against the live server and a
real Celery worker."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from inference import catalog
from inference.models import Run
from inference.playground.forms import playground_catalog

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"
SDXL = "@cf/stabilityai/stable-diffusion-xl-base-1.0"


@pytest.mark.django_db
class TestPage:
    def test_sign_in_required(self, client):
        response = client.get("/")
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=/")

    def test_login_page_signs_in_and_redirects_to_playground(self, client, user):
        response = client.post("/login/", {"username": "alice", "password": "pw-alice-123"})
        assert response.status_code == 302 and response["Location"] == "/"
        page = client.get("/")
        assert page.status_code == 200
        assert page.cookies["csrftoken"].value  # the page's fetch needs it

    def test_models_grouped_by_task_with_fitted_fields(self, client, user):
        client.force_login(user)
        html = client.get("/").content.decode()
        offered = {g["task"] for g in playground_catalog()}
        assert len(offered) >= 10, offered
        for spec in catalog.current_models():
            if spec.task in offered:
                assert f'value="{spec.name}"' in html
        retired = next(m for m in catalog.MODELS if m.is_retired())
        assert f'value="{retired.name}"' not in html  # retired models are not offered
        assert '<optgroup label="Text generation" data-task="text-generation">' in html
        groups = {g["task"]: g for g in playground_catalog()}
        gen = {f["name"]: f for f in groups["text-generation"]["fields"]}
        # Slider bounds come from the task schema: what validation accepts.
        assert (gen["temperature"]["min"], gen["temperature"]["max"]) == (0, 5)
        assert (gen["top_k"]["min"], gen["top_k"]["max"]) == (1, 50)
        assert {"prompt", "messages", "stream"} <= set(gen)
        image = {f["name"]: f for f in groups["text-to-image"]["fields"]}
        assert (image["width"]["min"], image["width"]["max"]) == (256, 2048)
        asr = {m["name"]: m for m in groups["automatic-speech-recognition"]["models"]}
        assert asr["@cf/openai/whisper"]["files"] == [{"name": "audio", "kind": "audio"}]
        vision = {m["name"]: m for m in groups["text-generation"]["models"]}
        assert vision["@cf/meta/llama-3.2-11b-vision-instruct"]["files"] == [
            {"name": "image", "kind": "image"}
        ]

    def test_history_shows_only_own_runs(self, client, user, other_user):
        for owner, prompt in ((user, "mine"), (other_user, "theirs")):
            Run.objects.create(user=owner, model=LLAMA, task="text-generation", input={"prompt": prompt})
        client.force_login(user)
        response = client.get("/")
        raw = response.content.decode().split('id="history-data" type="application/json">')[1]
        history = json.loads(raw.split("</script>")[0])
        assert [r["input"]["prompt"] for r in history] == ["mine"]
        assert history[0]["status"] == "queued" and history[0]["urls"]["self"]


def _launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
    )


@pytest.mark.browser
@pytest.mark.worker
def test_text_and_image_runs_in_the_browser(live_server, worker, user, monkeypatch):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium (scripts/test does this)")
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls below
    # are ordinary synchronous test code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{live_server.url}/")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", "pw-alice-123")
            page.click("#sign-in")
            page.wait_for_selector("#run-form")
            # Record every status the progress box shows, to prove progress is visible.
            page.evaluate("""() => {
                window.seen = [];
                const box = document.getElementById('progress');
                new MutationObserver(() => window.seen.push(box.dataset.status))
                    .observe(box, {attributes: true});
            }""")

            page.select_option("#model", LLAMA)
            page.fill("#f-prompt", "Tell me about lighthouses")
            page.click("#submit")
            expect(page.locator("#progress")).to_have_attribute("data-status", "succeeded", timeout=60_000)
            text_run = Run.objects.filter(model=LLAMA).get()
            assert text_run.stream is True  # the playground asked for streamed tokens
            shown = page.locator("#stream").inner_text()
            assert shown.strip() and shown.strip() == text_run.result["response"].strip()
            seen = page.evaluate("window.seen")
            assert seen[0] == "submitting" and {"queued", "running"} & set(seen), seen
            page.screenshot(path=str(ARTIFACTS / "playground-text.png"), full_page=True)

            page.select_option("#model", SDXL)
            expect(page.locator("#task-name")).to_have_text("text-to-image")
            page.fill("#f-prompt", "a lighthouse at dusk")
            page.click("#submit")
            image = page.locator("#result img.generated")
            expect(image).to_be_visible(timeout=60_000)
            image_run = Run.objects.filter(model=SDXL).get()
            assert image_run.status == "succeeded"
            src = image.get_attribute("src")
            assert src == image_run.result["image"]
            # The browser really fetched and decoded the PNG (session auth on /api/media/).
            page.wait_for_function(
                "() => document.querySelector('#result img.generated').naturalWidth > 0"
            )
            assert page.evaluate(
                "document.querySelector('#result img.generated').naturalWidth"
            ) == image_run.input["width"]
            rows = page.locator("#history tbody tr")
            expect(rows).to_have_count(2)
            expect(page.locator("#history .badge.succeeded")).to_have_count(2)
            page.screenshot(path=str(ARTIFACTS / "playground-image.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "playground-text.png").stat().st_size > 10_000
    assert (ARTIFACTS / "playground-image.png").stat().st_size > 10_000


@pytest.mark.browser
def test_bad_input_is_shown_not_stored(live_server, transactional_db, user, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/login/")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", "pw-alice-123")
            page.click("#sign-in")
            page.select_option("#model", LLAMA)
            page.fill("#f-prompt", "")  # an empty prompt: the API answers 400
            page.click("#submit")
            expect(page.locator("#progress")).to_have_attribute("data-status", "rejected")
            expect(page.locator("#errors")).to_contain_text("input")
        finally:
            browser.close()
    assert Run.objects.count() == 0


@pytest.mark.browser
@pytest.mark.worker
def test_embeddings_classification_and_audio_are_readable(live_server, worker, user, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{live_server.url}/login/")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", "pw-alice-123")
            page.click("#sign-in")

            page.select_option("#model", "@cf/baai/bge-small-en-v1.5")
            page.fill("#f-text", "first sentence\nsecond sentence")
            page.click("#submit")
            embeddings = page.locator("#result .embeddings")
            expect(embeddings).to_be_visible(timeout=60_000)
            run = Run.objects.get(model="@cf/baai/bge-small-en-v1.5")
            assert run.input["text"] == ["first sentence", "second sentence"]
            dims = len(run.result["data"][0])
            expect(embeddings.locator("p")).to_have_text(f"2 vector(s) × {dims} dimensions")

            page.select_option("#model", "@cf/huggingface/distilbert-sst-2-int8")
            page.fill("#f-text", "What a lovely day")
            page.click("#submit")
            labels = page.locator("#result table.labels tr")
            expect(labels.first).to_be_visible(timeout=60_000)
            run = Run.objects.get(model="@cf/huggingface/distilbert-sst-2-int8")
            expect(labels).to_have_count(1 + len(run.result))  # header + one row per label
            expect(page.locator("#result table.labels")).to_contain_text(run.result[0]["label"])

            page.select_option("#model", "@cf/myshell-ai/melotts")
            page.fill("#f-prompt", "Hello there")
            page.click("#submit")
            audio = page.locator("#result audio.generated")
            expect(audio).to_have_count(1, timeout=60_000)
            run = Run.objects.get(model="@cf/myshell-ai/melotts")
            assert audio.get_attribute("src") == run.result["audio"]
            page.screenshot(path=str(ARTIFACTS / "playground-audio.png"), full_page=True)
        finally:
            browser.close()
