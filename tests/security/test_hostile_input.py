"""Hostile input: body and upload size limits (413), JSON nesting and NUL
characters (400), content sniffing of uploads, generated media paths."""

from __future__ import annotations

import base64
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from inference.middleware import BODY_OVERHEAD, max_request_bytes
from inference.models import Run, RunMedia, media_upload_to
from inference.parsing import json_depth

from .conftest import LLAMA, png_bytes

RESNET = "@cf/microsoft/resnet-50"

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def nothing_stored() -> bool:
    return not Run.objects.exists() and not RunMedia.objects.exists()


class TestBodySize:
    def test_default_limit_fits_one_inline_file(self, settings):
        settings.INFERENCE = {**settings.INFERENCE, "MAX_UPLOAD_BYTES": 1000, "MAX_REQUEST_BYTES": None}
        assert max_request_bytes() == 4000 + BODY_OVERHEAD

    def test_oversize_body_answers_413_json_before_parsing(self, api, settings, emulator):
        settings.INFERENCE = {**settings.INFERENCE, "MAX_REQUEST_BYTES": 2048}
        body = json.dumps({"model": LLAMA, "input": {"prompt": "x" * 5000}})
        response = api.post("/api/runs/", body, content_type="application/json")
        assert response.status_code == 413
        assert response["Content-Type"] == "application/json"
        payload = response.json()
        assert payload["code"] == "request_too_large" and payload["limit"] == 2048
        assert nothing_stored() and emulator.requests == []

    def test_oversize_multipart_answers_413(self, api, settings):
        settings.INFERENCE = {**settings.INFERENCE, "MAX_REQUEST_BYTES": 4096}
        upload = SimpleUploadedFile("a.png", png_bytes() + b"\0" * 10_000, content_type="image/png")
        response = api.post("/api/runs/", {"model": RESNET, "input": "{}", "image": upload}, format="multipart")
        assert response.status_code == 413 and response.json()["code"] == "request_too_large"
        assert nothing_stored()

    def test_body_just_under_limit_is_accepted(self, api, settings):
        body = json.dumps({"model": LLAMA, "input": {"prompt": "hello"}})
        settings.INFERENCE = {**settings.INFERENCE, "MAX_REQUEST_BYTES": len(body)}
        assert api.post("/api/runs/", body, content_type="application/json").status_code == 202

    def test_invalid_content_length_is_400(self, api):
        response = api.generic("POST", "/api/runs/", b"{}", content_type="application/json", CONTENT_LENGTH="abc")
        assert response.status_code == 400

    def test_upload_over_max_upload_bytes_is_413_naming_the_field(self, api, settings):
        settings.INFERENCE = {**settings.INFERENCE, "MAX_UPLOAD_BYTES": 2000}
        data = png_bytes() + b"\0" * 3000  # a PNG header, 3 KB long
        upload = SimpleUploadedFile("a.png", data, content_type="image/png")
        response = api.post("/api/runs/", {"model": RESNET, "input": "{}", "image": upload}, format="multipart")
        assert response.status_code == 413
        assert "image" in response.json()
        assert nothing_stored()

    def test_inline_base64_over_limit_is_413(self, api, settings):
        settings.INFERENCE = {**settings.INFERENCE, "MAX_UPLOAD_BYTES": 2000}
        inline = base64.b64encode(png_bytes() + b"\0" * 3000).decode()
        response = api.post("/api/runs/", {"model": RESNET, "input": {"image": inline}}, format="json")
        assert response.status_code == 413 and "input.image" in response.json()
        assert nothing_stored()


class TestJSONLimits:
    def test_depth_counter_ignores_brackets_in_strings(self):
        assert json_depth('{"a": "[[[[[[[[", "b": [1, [2]]}') == 3
        assert json_depth('"\\"[[["') == 0
        assert json_depth(nested(100)) == 100

    @pytest.mark.parametrize("depth", [65, 1000, 100_000])
    def test_too_deep_is_400_not_500(self, api, depth, emulator):
        body = f'{{"model": "{LLAMA}", "input": {{"prompt": "x", "deep": {nested(depth)}}}}}'
        response = api.post("/api/runs/", body, content_type="application/json")
        assert response.status_code == 400
        assert "deeper than 64" in response.json()["detail"]
        assert nothing_stored() and emulator.requests == []

    def test_depth_limit_is_a_setting(self, api, settings):
        settings.INFERENCE = {**settings.INFERENCE, "MAX_JSON_DEPTH": 3}
        body = json.dumps({"model": LLAMA, "input": {"prompt": "x"}, "metadata": {"a": {"b": [1]}}})
        response = api.post("/api/runs/", body, content_type="application/json")
        assert response.status_code == 400 and "deeper than 3" in response.json()["detail"]

    def test_reasonable_nesting_is_accepted(self, api):
        metadata = {"a": json.loads(nested(40))}
        response = api.post("/api/runs/", {"model": LLAMA, "input": {"prompt": "x"}, "metadata": metadata}, format="json")
        assert response.status_code == 202, response.content

    def test_multipart_input_text_has_the_same_limit(self, api):
        text = '{"prompt": "x", "d": ' + nested(5000) + "}"
        response = api.post("/api/runs/", {"model": LLAMA, "input": text}, format="multipart")
        assert response.status_code == 400
        assert "input" in response.json() and "deeper than 64" in response.json()["input"][0]

    def test_nul_characters_are_400(self, api):
        body = '{"model": "' + LLAMA + '", "input": {"prompt": "a\\u0000b"}}'
        response = api.post("/api/runs/", body, content_type="application/json")
        # Refused by the submit service, naming the field; nothing stored.
        assert response.status_code == 400 and "input.prompt" in response.json()
        assert Run.objects.count() == 0
        # An escaped backslash followed by "u0000" is ordinary text.
        body = '{"model": "' + LLAMA + '", "input": {"prompt": "a\\\\u0000b"}}'
        assert api.post("/api/runs/", body, content_type="application/json").status_code == 202
        assert Run.objects.get().input["prompt"] == "a\\u0000b"

    def test_not_utf8_is_400(self, api):
        response = api.post("/api/runs/", b'{"model": "\xff\xfe"}', content_type="application/json")
        assert response.status_code == 400


class TestSniffing:
    def post_image(self, api, data: bytes, declared: str = "image/png", name: str = "cat.png"):
        upload = SimpleUploadedFile(name, data, content_type=declared)
        return api.post("/api/runs/", {"model": RESNET, "input": "{}", "image": upload}, format="multipart")

    @pytest.mark.parametrize("data", [
        b"<html><script>alert(1)</script></html>",
        b"%PDF-1.7\n...",
        b"MZ\x90\x00\x03" + b"\0" * 64,  # a Windows executable
        b"ID3\x03\x00" + b"\0" * 64,  # audio where an image belongs
    ])
    def test_declared_type_is_ignored_bytes_decide(self, api, data):
        response = self.post_image(api, data)
        assert response.status_code == 400
        assert "image" in response.json() and "must be an image" in response.json()["image"][0]
        assert nothing_stored()

    def test_inline_non_image_is_400(self, api):
        inline = base64.b64encode(b"<svg onload=alert(1)>").decode()
        response = api.post("/api/runs/", {"model": RESNET, "input": {"image": list(b"GIF89a-not-really")[:3] + [0]}}, format="json")
        assert response.status_code == 400
        response = api.post("/api/runs/", {"model": RESNET, "input": {"image": inline}}, format="json")
        assert response.status_code == 400 and "input.image" in response.json()

    def test_real_image_with_lying_type_and_hostile_name(self, api):
        response = self.post_image(api, png_bytes(), declared="text/html", name="../../../etc/passwd.html")
        assert response.status_code == 202, response.content
        media = RunMedia.objects.get()
        assert media.content_type == "image/png"  # sniffed, not declared
        assert "passwd" not in media.file.name and ".." not in media.file.name
        assert media.file.name.endswith(f"/{media.run_id}/{media.pk}.png")
        served = api.get(f"/api/media/{media.pk}/")
        assert served["Content-Type"] == "image/png" and served["X-Content-Type-Options"] == "nosniff"


class TestGeneratedPaths:
    @pytest.mark.parametrize("filename", [
        "../../etc/passwd", "x.png/../../../a", "evil.PH P", "a.b\\..\\c", "image.png\0.sh", "noext", "a." + "x" * 50,
    ])
    def test_media_upload_to_never_uses_the_given_name(self, filename, world):
        run = world.make_run()
        media = RunMedia(run=run, role="input", field="image", content_type="image/png", size=1, sha256="0")
        path = media_upload_to(media, filename)
        assert path.startswith("inference/") and ".." not in path and "\\" not in path and "\0" not in path
        assert path.split("/")[-2:-1] == [str(run.pk)]
        stem, _, ext = path.rsplit("/", 1)[-1].partition(".")
        assert stem == str(media.pk) and ext.isalnum() and len(ext) <= 8

    def test_known_extension_kept(self, world):
        run = world.make_run()
        media = RunMedia(run=run, role="input", field="image", content_type="image/png", size=1, sha256="0")
        assert media_upload_to(media, "image.PNG").endswith(f"{media.pk}.png")


class TestNonFiniteNumbers:
    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
    def test_refused_with_400(self, api, literal):
        body = '{"model": "' + LLAMA + '", "input": {"prompt": "x", "temperature": ' + literal + "}}"
        response = api.post("/api/runs/", body, content_type="application/json")
        assert response.status_code == 400, response.content
        assert nothing_stored()

    def test_in_multipart_input_too(self, api):
        response = api.post("/api/runs/", {"model": LLAMA, "input": '{"prompt": "x", "t": NaN}'}, format="multipart")
        assert response.status_code == 400 and "input" in response.json()


class TestFoundByFuzzing:
    """Regressions: each of these was a 500 before."""

    def test_nul_in_idempotency_key_is_400(self, api):
        response = api.post("/api/runs/", {"model": LLAMA, "input": {"prompt": "x"}}, format="json",
                            HTTP_IDEMPOTENCY_KEY="abc\x00def")
        assert response.status_code == 400 and "Idempotency-Key" in response.json()
        assert nothing_stored()

    def test_authorization_outside_latin1_is_401(self, api):
        api.credentials(HTTP_AUTHORIZATION="Bearer \U000b1d64")
        assert api.get("/api/runs/").status_code == 401

    @pytest.mark.parametrize("charset", ["utf-16", "bogus"])
    def test_undecodable_charset_is_400(self, api, charset):
        response = api.generic("POST", "/api/runs/", b"\x00\x00", content_type=f"application/json; charset={charset}")
        assert response.status_code == 400
