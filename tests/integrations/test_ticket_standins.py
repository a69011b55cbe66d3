"""The Jira and GitHub stand-ins hold to the vendors' own descriptions (vendored subsets).

Every path and method a stand-in serves is in the description, with the status codes it
answers; the enums it enforces are the description's; a body the description calls invalid is
refused with the vendor's error shape.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes import github as gh
from tests.fakes import jira as jr

SERVED_JIRA = {
    ("/rest/api/3/issue", "post"): {201, 400, 401},
    ("/rest/api/3/issue/{issueIdOrKey}", "get"): {200, 401, 404},
    ("/rest/api/3/search/jql", "get"): {200, 400, 401},
}
SERVED_GITHUB = {
    ("/repos/{owner}/{repo}/issues", "post"): {201, 404, 422},
    ("/repos/{owner}/{repo}/issues", "get"): {200, 404, 422},
    ("/repos/{owner}/{repo}/issues/{issue_number}", "get"): {200, 304, 404},
}


@pytest.fixture
def jira() -> Iterator[jr.FakeJira]:
    with jr.FakeJira("a@b.example", "t") as fake:
        yield fake


@pytest.fixture
def github() -> Iterator[gh.FakeGitHub]:
    with gh.FakeGitHub("t") as fake:
        yield fake


def test_jira_paths_methods_and_codes_are_in_atlassians_description() -> None:
    paths = jr.spec()["paths"]
    for (path, method), codes in SERVED_JIRA.items():
        described = {int(c) for c in paths[path][method]["responses"]}
        assert codes <= described, (path, method, codes - described)
    error = jr.spec()["components"]["schemas"]["ErrorCollection"]["properties"]
    assert {"errorMessages", "errors"} <= set(error)


def test_github_paths_methods_codes_and_enums_are_the_descriptions() -> None:
    paths = gh.spec()["paths"]
    for (path, method), codes in SERVED_GITHUB.items():
        described = {int(c) for c in paths[path][method]["responses"]}
        assert codes - {401} <= described, (path, method, codes - described)
    assert gh.query_enum("/repos/{owner}/{repo}/issues", "state") == ["open", "closed", "all"]
    assert gh.state_reasons() == ["completed", "not_planned", "duplicate", "reopened"]
    with pytest.raises(ValueError, match="state_reason"):
        gh.FakeGitHub("t").close("acme/platform", 1, "wontfix")


def _jira_post(fake: jr.FakeJira, body: object) -> httpx.Response:
    auth = base64.b64encode(b"a@b.example:t").decode()
    return httpx.post(
        f"{fake.url}/rest/api/3/issue",
        content=json.dumps(body),
        headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
    )


def test_jira_refuses_what_the_description_and_adf_call_invalid(jira: jr.FakeJira) -> None:
    schema = jr.spec()["components"]["schemas"]["IssueUpdateDetails"]
    assert schema["properties"]["fields"]["type"] == "object"
    answer = _jira_post(jira, {"fields": ["not", "an", "object"]})
    assert answer.status_code == 400
    assert set(answer.json()) == {"errorMessages", "errors"}
    plain = {"project": {"key": "OPS"}, "summary": "s", "issuetype": {"name": "Task"}}
    answer = _jira_post(jira, {"fields": plain | {"description": "plain text is v2, not v3"}})
    assert answer.status_code == 400
    assert "description" in answer.json()["errors"]
    assert _jira_post(jira, {"fields": plain}).status_code == 201
    assert httpx.get(f"{jira.url}/rest/api/3/issue/OPS-1").status_code == 401


def test_github_refuses_what_the_description_calls_invalid(github: gh.FakeGitHub) -> None:
    required = gh.spec()["paths"]["/repos/{owner}/{repo}/issues"]["post"]["requestBody"]
    assert required["content"]["application/json"]["schema"]["required"] == ["title"]
    headers = {
        "Authorization": "Bearer t",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    url = f"{github.url}/repos/acme/platform/issues"
    answer = httpx.post(url, json={"body": "no title"}, headers=headers)
    assert answer.status_code == 422
    assert set(answer.json()) >= {"message", "documentation_url", "errors"}
    bad = httpx.get(url, params={"state": "done"}, headers=headers)
    assert bad.status_code == 422
    assert (
        httpx.post(url, json={"title": "t"}, headers=headers | {"Authorization": "x"}).json()[
            "message"
        ]
        == "Bad credentials"
    )
    made = httpx.post(url, json={"title": "t"}, headers=headers)
    assert made.status_code == 201
    etag = made.headers["ETag"]
    again = httpx.get(f"{url}/1", headers=headers | {"If-None-Match": etag})
    assert again.status_code == 304
