"""No secret leaves a step: DSNs, passwords, tokens and headers are masked."""

from __future__ import annotations

import pytest

from bot.runbooks.redact import MASK, Redactor, redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("postgresql://app:hunter22@db.internal:5432/app", "hunter22"),
        ("redis://:s3cr3tpw@cache:6379/0", "s3cr3tpw"),
        ("host=db user=app password=hunter22 dbname=app", "hunter22"),
        ("host=db password='two words' dbname=app", "two words"),
        ('{"password": "hunter22", "user": "app"}', "hunter22"),
        ("api_key=AbCdEf123456 region=eu", "AbCdEf123456"),
        ("Authorization: Bearer eyAbc.def-123456789", "eyAbc.def-123456789"),
        ("authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("curl -H 'Bearer abcdefghijklmnop'", "abcdefghijklmnop"),
        ("ALTER ROLE app PASSWORD 'hunter22'", "hunter22"),
        ("AUTH default hunter22", "hunter22"),
        ("token: xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij"),
        ("key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
        ("ghp_0123456789abcdefghijABCDEFGHIJ", "ghp_0123456789abcdefghijABCDEFGHIJ"),
    ],
)
def test_secret_shapes_are_masked(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert MASK in out


def test_known_secret_values_are_masked_anywhere() -> None:
    redactor = Redactor(["postgresql://u:pw-9f8e7d@h/db", "pw-9f8e7d", "tok"])
    assert redactor.text("connected to postgresql://u:pw-9f8e7d@h/db") == f"connected to {MASK}"
    assert redactor.text("the pw-9f8e7d leaked") == f"the {MASK} leaked"
    assert redactor.text("tokens are short") == "tokens are short"  # under 4 chars: ignored
    nested = redactor.value({"rows": [["pw-9f8e7d", 3]], "note": "password=x1"})
    assert nested == {"rows": [[MASK, 3]], "note": f"password={MASK}"}


def test_ordinary_text_is_left_alone() -> None:
    for text in [
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle'",
        "cmd=get flags=N age=12 idle=0",
        "authentication failed for user app",
        "127 tokens=5 passwords rotated quarterly",
        "used_memory_human:1.04M",
    ]:
        assert redact(text) == text
