"""Uploads and downloads under /api/files: limits, content sniffing, names, auth — on SQLite
and PostgreSQL."""

from __future__ import annotations

import hashlib
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from apihelp import Api, start_api
from httpx2 import Response
from starlette.applications import Starlette
from starlette.testclient import TestClient

from engine.accounts.auth import create_token
from engine.model.errors import ValidationFailed
from engine.runtime import Deployments
from engine.store.files import check_upload, load_file, missing_files, sanitize_name, store_file
from engine.web.files import content_disposition
from engine.web.routes import page_routes
from engine.web.server import create_web_app

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
JPG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40
PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n%%EOF\n"
DWG = b"AC1032" + b"\x00" * 100
DXF = b"  0\r\nSECTION\r\n  2\r\nHEADER\r\n  0\r\nENDSEC\r\n  0\r\nEOF\r\n"
DXF_COMMENT = b"999\nmade by a test\n0\nSECTION\n2\nENTITIES\n0\nENDSEC\n0\nEOF\n"

APP = {
    "app.yaml": """\
        name: filetest
        title: Files
        locale: en
        timezone: Asia/Shanghai
        calendar: cn
        roles:
          clerk: {label: Clerk}
        """,
    "forms/doc.yaml": """\
        title: Document
        title_field: title
        fields:
          title: {type: text, label: Title, required: true}
          drawings:
            type: files
            label: Drawings
            accept: [.png, .jpg, .pdf, .dwg, .dxf]
            max_size_mb: 0.01
            max_files: 2
          anything: {type: files, label: Anything}
          parts:
            type: table
            label: Parts
            fields:
              name: {type: text, label: Name}
              photo: {type: files, label: Photo, accept: [.png]}
        """,
}


def write_app(root: Path) -> Path:
    for rel, text in APP.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    api = start_api(db_url, write_app(tmp_path / "app"))
    api.add_user("clerk1", "clerk")
    yield api
    api.engine.dispose()


def web(api: Api) -> Starlette:
    return create_web_app(api.engine, Deployments(api.engine, api.live), page_routes())


def bearer(api: Api, username: str = "clerk1") -> TestClient:
    with api.engine.begin() as conn:
        token = create_token(conn, username)
    return TestClient(
        web(api), headers={"Authorization": f"Bearer {token}"}, raise_server_exceptions=False
    )


def upload(
    client: TestClient,
    name: str,
    data: bytes,
    field: str = "drawings",
    content_type: str = "application/octet-stream",
    headers: dict[str, str] | None = None,
) -> Response:
    return client.post(
        f"/api/files?form=doc&field={field}",
        files={"file": (name, data, content_type)},
        headers=headers,
    )


def codes(response: Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def test_upload_and_download(api: Api) -> None:
    client = bearer(api)
    r = upload(client, "drawing.png", PNG, content_type="text/html")
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "name", "size", "content_type"}
    assert re.fullmatch(r"[0-9a-f]{32}", body["id"])
    # the stored type comes from the extension, never from the client
    assert body == {
        "id": body["id"],
        "name": "drawing.png",
        "size": len(PNG),
        "content_type": "image/png",
    }
    got = client.get(f"/api/files/{body['id']}")
    assert got.status_code == 200
    assert got.content == PNG
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"].startswith("attachment;")
    with api.engine.connect() as conn:
        info, data = load_file(conn, body["id"])  # type: ignore[misc]
    assert data == PNG
    assert info.sha256 == hashlib.sha256(PNG).hexdigest()
    assert info.uploaded_by == "clerk1"
    assert info.uploaded_at.tzinfo is not None


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("a.png", PNG),
        ("photo.JPG", JPG),
        ("spec.pdf", PDF),
        ("part.dwg", DWG),
        ("part.dxf", DXF),
        ("commented.dxf", DXF_COMMENT),
    ],
)
def test_accepted_kinds(api: Api, name: str, data: bytes) -> None:
    r = upload(bearer(api), name, data)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("empty.png", b"", 400, "empty"),
        ("big.pdf", b"%PDF-1.4\n" + b"x" * 11_000, 413, "too_large"),
        ("run.exe", b"MZ" + b"\x00" * 50, 415, "file_type"),
        ("page.html", b"<html><script>alert(1)</script>", 415, "file_type"),
        ("fake.png", PDF, 415, "file_content"),
        ("fake.jpg", PNG, 415, "file_content"),
        ("fake.pdf", b"<html>%PDF-1.4", 415, "file_content"),
        ("fake.dwg", b"MZ" + b"\x00" * 50, 415, "file_content"),
        ("fake.dxf", b"hello world, not a drawing", 415, "file_content"),
        ("noext", PNG, 400, "file_name"),
        ("../", PNG, 400, "file_name"),
    ],
)
def test_refused_uploads(api: Api, name: str, data: bytes, status: int, code: str) -> None:
    r = upload(bearer(api), name, data)
    assert r.status_code == status, r.text
    assert codes(r) == [code]
    assert r.json()["errors"][0]["field"] == "drawings"


def test_pdf_may_start_with_blank_lines(api: Api) -> None:
    assert upload(bearer(api), "x.pdf", b"\r\n" + PDF).status_code == 201


def test_messages_follow_the_language(api: Api) -> None:
    r = upload(bearer(api), "run.exe", b"MZ", headers={"Accept-Language": "zh-CN"})
    assert r.json()["errors"][0]["message"].startswith("Drawings：不接受 .exe 文件")


def test_size_limit_before_reading(api: Api) -> None:
    client = bearer(api)
    r = client.post(
        "/api/files?form=doc&field=drawings",
        content=b"x" * 200_000,
        headers={"Content-Type": "multipart/form-data; boundary=abc"},
    )
    assert r.status_code == 413
    assert codes(r) == ["too_large"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: cut off while counting
        yield b"--abc\r\nContent-Disposition: form-data; name=file; filename=a.png\r\n\r\n"
        for _ in range(200):
            yield b"y" * 1024

    r = client.post(
        "/api/files?form=doc&field=drawings",
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=abc"},
    )
    assert r.status_code == 413


def test_field_without_limits_takes_any_extension(api: Api) -> None:
    client = bearer(api)
    r = upload(client, "notes.xyz", b"whatever", field="anything")
    assert r.status_code == 201, r.text
    assert r.json()["content_type"] == "application/octet-stream"
    assert upload(client, "fake.png", b"not png", field="anything").status_code == 415
    assert upload(client, "t.txt", "中文".encode(), field="anything").status_code == 201


def test_child_table_column(api: Api) -> None:
    client = bearer(api)
    assert upload(client, "a.png", PNG, field="parts.photo").status_code == 201
    assert upload(client, "a.pdf", PDF, field="parts.photo").status_code == 415


@pytest.mark.parametrize(
    "query",
    ["form=doc&field=title", "form=nope&field=drawings", "form=doc", "", "form=doc&field=x.y"],
)
def test_upload_needs_a_files_field(api: Api, query: str) -> None:
    r = bearer(api).post(f"/api/files?{query}", files={"file": ("a.png", PNG, "image/png")})
    assert r.status_code == 404


def test_bad_bodies(api: Api) -> None:
    client = bearer(api)
    r = client.post("/api/files?form=doc&field=drawings", json={"a": 1})
    assert r.status_code == 415
    two = client.post(
        "/api/files?form=doc&field=drawings",
        files=[("file", ("a.png", PNG, "image/png")), ("other", ("b.png", PNG, "image/png"))],
    )
    assert two.status_code == 400
    none = client.post("/api/files?form=doc&field=drawings", data={"x": "1"}, files={})
    assert none.status_code in (400, 415)
    broken = client.post(
        "/api/files?form=doc&field=drawings",
        content=b"--zzz\r\nnonsense",
        headers={"Content-Type": "multipart/form-data; boundary=abc"},
    )
    assert broken.status_code == 400


def test_auth_and_csrf(api: Api) -> None:
    anon = TestClient(web(api))
    assert upload(anon, "a.png", PNG).status_code == 401
    file_id = upload(bearer(api), "a.png", PNG).json()["id"]
    assert anon.get(f"/api/files/{file_id}").status_code == 401
    # a cookie session must send the CSRF header
    from engine.accounts.auth import set_password

    with api.engine.begin() as conn:
        set_password(conn, "clerk1", "long-enough-pw")
    page = anon.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]  # type: ignore[index]
    signed = anon.post(
        "/login",
        data={"csrf_token": token, "username": "clerk1", "password": "long-enough-pw"},
        follow_redirects=False,
    )
    assert signed.status_code == 303
    token = re.search(r'name="csrf-token" content="([^"]+)"', anon.get("/").text)[1]  # type: ignore[index]
    assert upload(anon, "a.png", PNG).status_code == 403
    assert upload(anon, "a.png", PNG, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    ok = upload(anon, "a.png", PNG, headers={"X-CSRF-Token": token})
    assert ok.status_code == 201
    assert anon.get(f"/api/files/{file_id}").status_code == 200


def test_unknown_files_are_404(api: Api) -> None:
    client = bearer(api)
    assert client.get("/api/files/" + "0" * 32).status_code == 404
    assert client.get("/api/files/not-an-id").status_code == 404
    assert client.get("/api/files/" + "A" * 32).status_code == 404


def test_download_name_is_safe(api: Api) -> None:
    client = bearer(api)
    r = upload(client, "..\\..\\图纸 v2;\u202e.png", PNG)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "图纸 v2;.png"
    disposition = client.get(f"/api/files/{r.json()['id']}").headers["content-disposition"]
    assert disposition == (
        "attachment; filename=\"__ v2_.png\"; filename*=UTF-8''%E5%9B%BE%E7%BA%B8%20v2%3B.png"
    )
    assert content_disposition('a"b\\c.pdf').startswith('attachment; filename="a_b_c.pdf"')


def test_sanitize_name() -> None:
    assert sanitize_name("../../etc/passwd.png") == "passwd.png"
    assert sanitize_name("C:\\Users\\me\\a.pdf") == "a.pdf"
    assert sanitize_name("a\x00b\r\n\u202ec.png") == "abc.png"
    assert sanitize_name("..hidden.png") == "hidden.png"
    assert sanitize_name(None) == ""
    long = sanitize_name("图" * 300 + ".dwg")
    assert len(long) == 255
    assert long.endswith(".dwg")
    assert sanitize_name("x" * 400) == "x" * 255


def test_store_and_missing(api: Api) -> None:
    spec = api.app.forms["doc"].by_name["drawings"]
    with api.engine.begin() as conn:
        stored = store_file(conn, spec, "d.pdf", PDF, "clerk1")
        assert missing_files(conn, [stored.id, "f" * 32, "bad"]) == ["f" * 32, "bad"]
        assert load_file(conn, "f" * 32) is None
    with pytest.raises(ValidationFailed) as refused:
        check_upload(api.app.forms["doc"].by_name["title"], "a.png", PNG)
    assert refused.value.errors[0].code == "not_files"


def test_ids_in_a_record(api: Api) -> None:
    """A record keeps the ids returned by the upload; the pages list the files by name."""
    client = bearer(api)
    file_id = upload(client, "plan.pdf", PDF).json()["id"]
    r = client.post("/api/forms/doc/records", json={"title": "T1", "drawings": [file_id]})
    assert r.status_code == 201, r.text
    assert r.json()["drawings"] == [file_id]
    page = client.get(f"/forms/doc/{r.json()['id']}")
    assert f'href="/api/files/{file_id}">plan.pdf</a>' in page.text


def test_records_refuse_unknown_file_ids(api: Api) -> None:
    client = bearer(api)
    ghost = "f" * 32
    r = client.post("/api/forms/doc/records", json={"title": "T", "drawings": [ghost]})
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {
            "field": "drawings",
            "code": "not_found",
            "message": f"Drawings: no uploaded file with id {ghost}",
        }
    ]
    row = {"title": "T", "parts": [{"name": "p", "photo": [ghost]}]}
    r = client.post("/api/forms/doc/records", json=row)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "parts.photo"
    made = client.post("/api/forms/doc/records", json={"title": "T"}).json()
    r = client.post(
        f"/api/forms/doc/records/{made['id']}/children/parts", json={"name": "p", "photo": [ghost]}
    )
    assert r.status_code == 422, r.text
    real = upload(client, "a.png", PNG, field="parts.photo").json()["id"]
    r = client.post("/api/forms/doc/records", json={"title": "T", "parts": [{"photo": [real]}]})
    assert r.status_code == 201, r.text
