"""docker-compose.yml and the Dockerfile name real entry points; system checks
catch missing and contradictory settings (in process, with override_settings)."""

from __future__ import annotations

import importlib
import json
import shlex
from pathlib import Path

import pytest
import yaml
from celery import Celery
from django.core.checks import run_checks
from django.core.management import get_commands, load_command_class

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.embedded
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def split_command(command) -> list[list[str]]:
    """A compose command (string or list) as the argv lists it runs; ``sh -c``
    chains are split on ``&&``."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in argv[2].split("&&")]
    return [argv]


def check_entry_point(argv: list[str]) -> str:
    """Raise AssertionError unless ``argv`` starts a real entry point; return its kind."""
    if argv[:2] == ["python", "manage.py"]:
        name, args = argv[2], argv[3:]
        commands = get_commands()
        assert name in commands, f"manage.py has no command {name!r}"
        command = load_command_class(commands[name], name)
        command.create_parser("manage.py", name).parse_args(args)  # options exist
        return f"manage.py {name}"
    if argv[0] == "celery":
        assert argv[1] == "-A", argv
        module = importlib.import_module(f"{argv[2]}.celery")
        assert isinstance(module.app, Celery)
        from celery.bin.celery import celery as celery_cli

        assert argv[3] in celery_cli.commands, f"celery has no subcommand {argv[3]!r}"
        return f"celery {argv[3]}"
    if argv[0] == "gunicorn":
        target = next(a for a in argv[1:] if ":" in a and not a.startswith("-"))
        module_name, attr = target.split(":")
        app = getattr(importlib.import_module(module_name), attr)
        assert callable(app)
        return "gunicorn"
    raise AssertionError(f"unknown entry point: {argv}")


def test_compose_has_the_documented_services_and_media_volume():
    services = COMPOSE["services"]
    assert {"web", "worker", "beat", "redis", "postgres"} <= set(services)
    assert "media" in COMPOSE["volumes"]
    for name in ("web", "worker", "beat"):
        assert any(v.startswith("media:") for v in services[name]["volumes"]), name
        assert services[name]["environment"]["MEDIA_ROOT"] == services[name]["volumes"][0].split(":")[1]


def test_every_compose_command_names_a_real_entry_point():
    kinds = []
    for name, service in COMPOSE["services"].items():
        if "command" not in service:
            assert "image" in service, f"{name}: neither a command nor an image"
            continue
        for argv in split_command(service["command"]):
            kinds.append(check_entry_point(argv))
    assert {"manage.py migrate", "gunicorn", "celery worker", "celery beat"} <= set(kinds), kinds


def test_dockerfile_commands_are_real_entry_points():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    (cmd,) = [line for line in lines if line.startswith("CMD ")]
    assert check_entry_point(json.loads(cmd[4:])) == "gunicorn"
    manage = [shlex.split(line[4:]) for line in lines if line.startswith("RUN python manage.py")]
    assert [check_entry_point(argv) for argv in manage] == ["manage.py collectstatic"]


def test_the_checker_itself_rejects_unknown_entry_points():
    for argv in (["python", "manage.py", "inference_nope"], ["celery", "-A", "cfai_project", "flyer"],
                 ["gunicorn", "cfai_project.wsgi:nope"], ["uwsgi", "x"]):
        with pytest.raises((AssertionError, AttributeError)):
            check_entry_point(argv)


def ids(**inference) -> set[str]:
    from django.conf import settings
    from django.test import override_settings

    with override_settings(INFERENCE={**settings.INFERENCE, **inference}):
        return {m.id for m in run_checks() if m.id and m.id.startswith("inference.")}


class TestChecks:
    def test_configured_project_is_clean(self):
        assert ids() == set()

    @pytest.mark.parametrize(
        "settings_, check_id",
        [
            ({"RETRY_BACKOFF_BASE": 10, "RETRY_BACKOFF_MAX": 2}, "inference.E006"),
            ({"READ_TIMEOUT": 900, "RUN_DEADLINE": 600}, "inference.E007"),
            ({"MEDIA_STORAGE": "s3"}, "inference.E008"),
            ({"API_KEY_PREFIX": "my_key"}, "inference.E009"),
            ({"CONNECT_TIMEOUT": 0}, "inference.E005"),
            ({"MAX_UPLOAD_BYTES": "lots"}, "inference.E005"),
            ({"MAX_ATTEMPTS": 0}, "inference.E003"),
            ({"BOGUS": 1}, "inference.E002"),
            ({"ACCOUNT_ID": ""}, "inference.W001"),
            ({"API_TOKEN": "", "EMAIL": "", "API_KEY": ""}, "inference.W002"),
            ({"RUN_DEADLINE": 7200}, "inference.W005"),  # > the broker's visibility timeout
        ],
    )
    def test_each_problem_has_its_id(self, settings_, check_id):
        assert check_id in ids(**settings_)

    def test_messages_say_how_to_fix(self):
        from django.conf import settings
        from django.test import override_settings

        with override_settings(INFERENCE={**settings.INFERENCE, "MEDIA_STORAGE": "s3"}):
            (message,) = [m for m in run_checks() if m.id == "inference.E008"]
        assert "'s3'" in message.msg and "default" in message.hint

    def test_rest_framework_contradictions(self, settings):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_PERMISSION_CLASSES": [
            "rest_framework.permissions.AllowAny"], "DEFAULT_AUTHENTICATION_CLASSES": [],
            "DEFAULT_SCHEMA_CLASS": "rest_framework.schemas.openapi.AutoSchema"}
        found = ids()
        assert {"inference.E010", "inference.E011", "inference.W004"} <= found
