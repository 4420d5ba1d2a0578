"""``manage.py inference_run``: submits through services, shows progress, prints
the run, saves media."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from inference.models import Run

LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"
SDXL = "@cf/stabilityai/stable-diffusion-xl-base-1.0"


def run_cli(*args: str) -> tuple[dict, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("inference_run", *args, stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
class TestEager:
    def test_wait_prints_the_finished_run(self, user, eager, emulator):
        run, err = run_cli(LLAMA, "--input", '{"prompt": "Hi", "max_tokens": 8}', "--wait",
                           "--user", "alice")
        assert run["status"] == "succeeded" and run["result"]["response"]
        assert f"Submitted run {run['id']}" in err and "succeeded" in err
        stored = Run.objects.get(pk=run["id"])
        assert stored.source == "cli" and stored.user == user

    def test_input_from_file_and_media_saved_to_out(self, user, eager, tmp_path):
        payload = tmp_path / "input.json"
        payload.write_text(json.dumps({"prompt": "a lighthouse", "width": 256, "height": 256}))
        out = tmp_path / "out"
        run, err = run_cli(SDXL, "--input", f"@{payload}", "--out", str(out), "--user", "alice")
        assert run["status"] == "succeeded"
        (saved,) = out.iterdir()
        assert saved.name == f"{run['id']}-image.png"
        assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"Saved {saved}" in err

    def test_bad_input_names_the_field_and_stores_nothing(self, user, eager, emulator):
        with pytest.raises(CommandError, match=r"input\.prompt"):
            run_cli(LLAMA, "--input", '{"prompt": ""}', "--user", "alice")
        with pytest.raises(CommandError, match="not valid JSON"):
            run_cli(LLAMA, "--input", "{nope", "--user", "alice")
        with pytest.raises(CommandError, match="cannot read"):
            run_cli(LLAMA, "--input", "@/nonexistent/in.json", "--user", "alice")
        assert not Run.objects.exists() and emulator.requests == []

    def test_failed_run_exits_non_zero_with_the_reason(self, user, eager):
        with pytest.raises(CommandError, match="failed"):
            run_cli(LLAMA, "--input", '{"prompt": "[[emulator:fault=429_3036]] hi"}', "--wait",
                    "--user", "alice")
        assert Run.objects.get().error_code == 3036

    def test_user_is_required_unless_one_superuser(self, django_user_model, eager):
        with pytest.raises(CommandError, match="--user"):
            run_cli(LLAMA, "--input", '{"prompt": "hi"}')
        django_user_model.objects.create_superuser("root", password="pw-root-1234")
        run, _ = run_cli(LLAMA, "--input", '{"prompt": "hi"}', "--wait")
        assert run["user"] == "root"


@pytest.mark.worker
def test_progress_is_shown_while_a_worker_runs_it(user, worker, emulator):
    emulator.configure(latency_ms=1500)  # long enough to be seen running
    run, err = run_cli(LLAMA, "--input", '{"prompt": "Hi", "max_tokens": 8}', "--wait",
                       "--user", "alice", "--timeout", "60")
    assert run["status"] == "succeeded"
    states = [line.split("] ", 1)[1] for line in err.splitlines() if line.startswith("[")]
    assert states[-1] == "succeeded" and "running" in states, err
