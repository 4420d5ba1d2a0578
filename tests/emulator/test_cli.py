"""``python -m inference.emulator`` and ``manage.py inference_emulator`` serve until stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def _serve(args: list[str]) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    return proc, line


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "inference.emulator", "--port", "0", "--token", "T1", "--latency-ms", "0"],
    [sys.executable, "manage.py", "inference_emulator", "--port", "0", "--token", "T1"],
])
def test_command_prints_base_url_and_serves(command):
    proc, line = _serve(command)
    try:
        assert line.startswith("Workers AI emulator listening: http://127.0.0.1:"), line
        base_url = line.split(": ", 1)[1]
        assert base_url.endswith("/client/v4")
        url = f"{base_url}/accounts/a/ai/run/@cf/meta/llama-3.1-8b-instruct-fp8"
        ok = requests.post(url, headers={"Authorization": "Bearer T1"}, json={"prompt": "hi"}, timeout=10)
        assert ok.status_code == 200 and ok.json()["success"] is True
        denied = requests.post(url, headers={"Authorization": "Bearer other"}, json={"prompt": "hi"}, timeout=10)
        assert denied.status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the command stops cleanly
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
        proc.stderr.close()
