"""The Confluence and GitHub contents stand-ins are held to the vendors' own descriptions.

If a stand-in accepted what the vendor refuses, the export tests built on it would prove
nothing: each route it serves must be in the vendored description, the enums it enforces must
be the description's, and a body the description (or the vendor's documented rules) forbids is
refused with the vendor's error shape.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.confluence import SPEC as CONFLUENCE
from tests.fakes.confluence import FakeConfluence
from tests.fakes.github_contents import ROUTE, FakeGitHubContents
from tests.fakes.github_contents import SPEC as GITHUB

EMAIL, TOKEN, GH_TOKEN, REPO = "a@acme.example", "tok", "ghp_x", "acme/pm"


@pytest.fixture
def conf() -> Iterator[FakeConfluence]:
    with FakeConfluence(EMAIL, TOKEN) as fake:
        yield fake


@pytest.fixture
def gh() -> Iterator[FakeGitHubContents]:
    with FakeGitHubContents(GH_TOKEN, repos={REPO}) as fake:
        yield fake


def wiki(conf: FakeConfluence, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(
        method, f"{conf.url}/wiki/api/v2{path}", auth=(EMAIL, TOKEN), timeout=5, **kw
    )


def new_page(**changes: Any) -> dict[str, Any]:
    body = {
        "spaceId": "131073",
        "status": "current",
        "title": "INC-0001 post-mortem",
        "body": {"representation": "storage", "value": "<p>ok</p>"},
    }
    return {**body, **changes}


# -- Confluence -------------------------------------------------------------------------------


def test_confluence_routes_and_enums_are_the_descriptions() -> None:
    assert CONFLUENCE.data["info"]["title"] == "The Confluence Cloud REST API v2"
    for method, path in [
        ("get", "/spaces"),
        ("get", "/pages"),
        ("post", "/pages"),
        ("get", "/pages/{id}"),
        ("put", "/pages/{id}"),
    ]:
        assert CONFLUENCE.has(method, path), (method, path)
    create = CONFLUENCE.request_schema("post", "/pages")
    assert create["required"] == ["spaceId"]
    assert create["properties"]["status"]["enum"] == ["current", "draft"]
    update = CONFLUENCE.request_schema("put", "/pages/{id}")
    assert update["required"] == ["id", "status", "title", "body", "version"]
    assert CONFLUENCE.schema("PageBodyWrite")["properties"]["representation"]["enum"] == [
        "storage",
        "atlas_doc_format",
        "wiki",
    ]


def test_confluence_accepts_a_valid_page_and_answers_in_the_descriptions_shape(
    conf: FakeConfluence,
) -> None:
    answer = wiki(conf, "POST", "/pages", json=new_page())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert CONFLUENCE.problems(body, CONFLUENCE.schema("PageSingle")) == []
    assert body["version"]["number"] == 1
    assert set(body["_links"]) >= {"webui", "base"}
    listed = wiki(conf, "GET", "/pages", params={"space-id": "131073", "title": body["title"]})
    assert [p["id"] for p in listed.json()["results"]] == [body["id"]]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"title": "no space"}, "'spaceId' is required"),
        (new_page(status="published"), "'status' must be one of 'current', 'draft'"),
        (new_page(spaceId=131073), "'spaceId' must be of type string"),
        (new_page(body={"representation": "html", "value": "<p/>"}), "representation"),
        (
            new_page(body={"representation": "storage", "value": "<p>a <b>b</p>"}),
            "Error parsing xhtml",
        ),
        (
            new_page(body={"representation": "storage", "value": "<p>]]> & <</p>"}),
            "Error parsing xhtml",
        ),
        (new_page(title=""), "Title is required"),
    ],
)
def test_confluence_refuses_what_confluence_refuses(
    conf: FakeConfluence, body: dict[str, Any], said: str
) -> None:
    answer = wiki(conf, "POST", "/pages", json=body)
    assert answer.status_code == 400
    (error,) = answer.json()["errors"]
    assert error["status"] == 400
    assert said in error["title"]
    assert conf.pages == {}


def test_confluence_checks_auth_version_title_and_parent(conf: FakeConfluence) -> None:
    bad = httpx.post(f"{conf.url}/wiki/api/v2/pages", json=new_page(), auth=(EMAIL, "x"))
    assert bad.status_code == 401
    made = wiki(conf, "POST", "/pages", json=new_page()).json()
    again = wiki(conf, "POST", "/pages", json=new_page())
    assert again.status_code == 400
    assert "already exists" in again.json()["errors"][0]["title"]
    orphan = wiki(conf, "POST", "/pages", json=new_page(title="other", parentId="1"))
    assert orphan.status_code == 404
    update = {
        "id": made["id"],
        "status": "current",
        "title": made["title"],
        "body": {"representation": "storage", "value": "<p>v2</p>"},
        "version": {"number": 1},
    }
    stale = wiki(conf, "PUT", f"/pages/{made['id']}", json=update)
    assert stale.status_code == 409
    assert "Current version is: 1" in stale.json()["errors"][0]["title"]
    update["version"] = {"number": 2}
    assert wiki(conf, "PUT", f"/pages/{made['id']}", json=update).status_code == 200
    assert conf.only_page().body == "<p>v2</p>"
    wrong = wiki(conf, "GET", "/pages", params={"status": "published"})
    assert wrong.status_code == 400


def test_confluence_faults_come_before_anything_is_applied(conf: FakeConfluence) -> None:
    conf.fail_next = [429, 500]
    throttled = wiki(conf, "POST", "/pages", json=new_page())
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "1")
    assert wiki(conf, "POST", "/pages", json=new_page()).status_code == 500
    assert conf.pages == {}
    conf.lose_next = 1
    with pytest.raises(httpx.RemoteProtocolError):
        wiki(conf, "POST", "/pages", json=new_page())
    assert len(conf.pages) == 1  # applied, answer lost


# -- GitHub contents --------------------------------------------------------------------------


def put(gh: FakeGitHubContents, body: Any, path: str = "postmortems/INC-0001.md") -> httpx.Response:
    return httpx.put(
        f"{gh.url}/repos/{REPO}/contents/{path}",
        json=body,
        headers={"Authorization": f"Bearer {GH_TOKEN}"},
        timeout=5,
    )


def test_github_routes_and_required_fields_are_the_descriptions() -> None:
    assert GITHUB.has("get", ROUTE)
    assert GITHUB.has("put", ROUTE)
    assert GITHUB.request_schema("put", ROUTE)["required"] == ["message", "content"]


def test_github_accepts_the_descriptions_own_example(gh: FakeGitHubContents) -> None:
    examples = GITHUB.operation("put", ROUTE)["requestBody"]["content"]["application/json"]
    example = examples["examples"]["example-for-creating-a-file"]["value"]
    answer = put(gh, example)
    assert answer.status_code == 201, answer.text
    assert GITHUB.problems(answer.json(), GITHUB.schema("file-commit")) == []
    assert gh.file(REPO, "postmortems/INC-0001.md") == "my new file contents"


@pytest.mark.parametrize(
    ("body", "code", "said"),
    [
        ({"content": "eA=="}, 422, "'message' is required"),
        ({"message": "m"}, 422, "'content' is required"),
        ({"message": 1, "content": "eA=="}, 422, "'message' must be of type string"),
        ({"message": "m", "content": "not base64!"}, 422, "not valid Base64"),
        ({"message": "m", "content": "eA==", "branch": "nope"}, 404, "Branch nope not found"),
    ],
)
def test_github_refuses_what_github_refuses(
    gh: FakeGitHubContents, body: dict[str, Any], code: int, said: str
) -> None:
    answer = put(gh, body)
    assert answer.status_code == code
    assert said in answer.json()["message"]
    assert gh.files == {}


def test_github_needs_the_current_sha_to_update(gh: FakeGitHubContents) -> None:
    content = base64.b64encode(b"one").decode()
    made = put(gh, {"message": "m", "content": content}).json()
    missing = put(gh, {"message": "m", "content": content})
    assert missing.status_code == 422
    assert '"sha" wasn\'t supplied' in missing.json()["message"]
    stale = put(gh, {"message": "m", "content": content, "sha": "0" * 40})
    assert stale.status_code == 409
    ok = put(gh, {"message": "m", "content": content, "sha": made["content"]["sha"]})
    assert ok.status_code == 200
    assert httpx.put(f"{gh.url}/repos/{REPO}/contents/x.md", json={}).status_code == 401
