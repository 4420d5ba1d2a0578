"""Fixtures for the security tests: a team with an owner, a member and a team
admin, an outsider, a staff user; a finished run with a media file."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from inference.models import Run, RunMedia, RunStatus, Team, TeamMembership
from inference.services.media import store_media

from ..conftest import make_client

ROLES = ("anonymous", "other", "owner", "member", "team_admin", "staff")
LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"


def png_bytes(size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Six users per test: PBKDF2 would dominate the run time on a loaded machine.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class World:
    team: Team
    users: dict = field(default_factory=dict)
    api: dict = field(default_factory=dict)  # role -> APIClient (Bearer key)
    web: dict = field(default_factory=dict)  # role -> django Client (session)

    def make_run(self, status: str = RunStatus.SUCCEEDED, **extra) -> Run:
        owner = self.users["owner"]
        return Run.objects.create(
            user=owner, team=self.team, api_key=self.api["owner"].key, model=LLAMA,
            task="text-generation", status=status, input={"prompt": "hi"},
            result={"response": "hello"} if status == RunStatus.SUCCEEDED else None, **extra,
        )


@pytest.fixture
def world(django_user_model) -> World:
    team = Team.objects.create(slug="acme", name="Acme")
    w = World(team=team)
    make = django_user_model.objects.create_user
    w.users = {
        "other": make("mallory", password="pw-mallory-1"),
        "owner": make("olivia", password="pw-olivia-1"),
        "member": make("mike", password="pw-mike-1"),
        "team_admin": make("ada", password="pw-ada-1"),
        "staff": make("stan", password="pw-stan-1", is_staff=True),
    }
    for role, kind in (("owner", "member"), ("member", "member"), ("team_admin", "admin")):
        TeamMembership.objects.create(team=team, user=w.users[role], role=kind)
    # Staff, not superuser: admin access comes from view permissions only.
    w.users["staff"].user_permissions.add(
        *Permission.objects.filter(content_type__app_label="inference", codename__startswith="view_")
    )
    w.api["anonymous"] = APIClient()
    w.web["anonymous"] = Client()
    for role, user in w.users.items():
        w.api[role] = make_client(user, name=role, team=team if role != "other" else None)
        web = Client()
        web.force_login(user)
        w.web[role] = web
    return w


@pytest.fixture
def finished_run(world) -> Run:
    return world.make_run()


@pytest.fixture
def run_media(finished_run) -> RunMedia:
    return store_media(finished_run, RunMedia.Role.OUTPUT, "image", png_bytes(), "image/png")
