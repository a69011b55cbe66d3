"""``/incident …`` text → typed commands; anything else → a UsageError that says what is wrong."""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands.parse import (
    HELP,
    TOP_USAGE,
    USAGE,
    Ack,
    Assign,
    Command,
    Declare,
    DiagCmd,
    FollowUp,
    Help,
    List,
    Note,
    PostmortemCmd,
    Reopen,
    Resolve,
    RunbookCmd,
    RunCmd,
    SetStatus,
    Sev,
    Timeline,
    Update,
    UsageError,
    help_text,
    parse,
    parse_mention,
)
from bot.errors import InvalidInput, UserError
from bot.incidents.severity import P1_P4
from bot.store.models import Status

K = "INC-0042"

HAPPY: list[tuple[str, Command]] = [
    # nothing, help
    ("", Help(None)),
    ("   \n ", Help(None)),
    ("help", Help(None)),
    ("HELP", Help(None)),
    ("help declare", Help("declare")),
    ("help severity", Help("sev")),
    # declare
    ("declare", Declare("")),  # no title: the declare form
    ("declare Checkout is failing", Declare("Checkout is failing")),
    ("Declare  Checkout   is failing ", Declare("Checkout is failing")),
    (
        'declare DB down sev:P1 service:db impact:"checkout fails" lead:<@U012ABC|alice>',
        Declare("DB down", "P1", "db", "checkout fails", "U012ABC"),
    ),
    ("declare --sev p1 DB down", Declare("DB down", severity="p1")),
    ("declare DB down -s 1", Declare("DB down", severity="1")),
    ("declare DB down --sev=P2 --service db", Declare("DB down", severity="P2", service="db")),
    ("declare DB down severity=P2", Declare("DB down", severity="P2")),
    ("declare DB down lead:@alice", Declare("DB down", commander="alice")),
    ("declare DB down commander:<@W0ABC>", Declare("DB down", commander="W0ABC")),
    ("declare DB down impact:“all users, EU”", Declare("DB down", impact="all users, EU")),
    ("declare DB down impact:”curly both ways”", Declare("DB down", impact="curly both ways")),
    ('declare "sev:P1" is not an option', Declare("sev:P1 is not an option")),
    ('declare "Payments API" returns 500', Declare("Payments API returns 500")),
    ("declare can't reach https://x.example/a:b", Declare("can't reach https://x.example/a:b")),
    ("declare re-deploy broke -x", Declare("re-deploy broke -x")),
    ("declare Checkout <@U1|al ice> paged", Declare("Checkout <@U1|al ice> paged")),
    # ack, update, runbook, postmortem: [key]
    ("ack", Ack(None)),
    ("ack INC-0042", Ack(K)),
    ("acknowledge inc-42", Ack("INC-42")),
    ("ack #42", Ack("INC-42")),
    ("update", Update(None)),
    ("update INC-0042", Update(K)),
    ("runbook", RunbookCmd(None)),
    ("runbook INC-0042", RunbookCmd(K)),
    ("postmortem", PostmortemCmd(None)),
    ("post-mortem INC-0042", PostmortemCmd(K)),
    # sev
    ("sev P1", Sev(None, "P1")),
    ("sev p1", Sev(None, "p1")),
    ("sev 1", Sev(None, "1")),
    ("sev INC-0042 P2 checkout is down  for EU", Sev(K, "P2", "checkout is down  for EU")),
    ("severity #7 P1", Sev("INC-7", "P1")),
    # status
    ("status mitigating", SetStatus(None, Status.MITIGATING)),
    ("status INC-0042 Monitoring fix deployed", SetStatus(K, Status.MONITORING, "fix deployed")),
    ("status resolved", SetStatus(None, Status.RESOLVED)),
    # roles
    ("lead <@U012ABC|alice>", Assign(None, "commander", "U012ABC")),
    ("lead INC-0042 @alice", Assign(K, "commander", "alice")),
    ("commander <@U012ABC>", Assign(None, "commander", "U012ABC")),
    ("ic @alice.smith", Assign(None, "commander", "alice.smith")),
    ("comms @bob", Assign(None, "communications", "bob")),
    ("communications INC-0042 <@U2|bob>", Assign(K, "communications", "U2")),
    ("scribe @carol", Assign(None, "scribe", "carol")),
    ("role scribe @carol", Assign(None, "scribe", "carol")),
    ("role INC-0042 Lead @carol", Assign(K, "commander", "carol")),
    ("role comms <@U3|dan>", Assign(None, "communications", "U3")),
    ("role liaison @erin", Assign(None, "liaison", "erin")),
    # note
    ("note restarted the api pods", Note(None, "restarted the api pods")),
    ("note INC-0042 db at 95% CPU", Note(K, "db at 95% CPU")),
    ('note he said "restart it', Note(None, 'he said "restart it')),
    ("note ask <@U1|al> &amp; bob\nthen retry", Note(None, "ask <@U1|al> &amp; bob\nthen retry")),
    ("note INC-0041 looked the same", Note("INC-0041", "looked the same")),
    # timeline
    ("timeline", Timeline(None)),
    ("timeline 50", Timeline(None, 50)),
    ("timeline INC-0042", Timeline(K, 20)),
    ("timeline #42 1", Timeline("INC-42", 1)),
    ("timeline 200", Timeline(None, 200)),
    # followup
    ("followup add a queue alert", FollowUp(None, "add a queue alert")),
    ("followup add a queue alert @alice", FollowUp(None, "add a queue alert", "alice")),
    ("followup <@U1|al> add a queue alert", FollowUp(None, "add a queue alert", "U1")),
    ("follow-up INC-0042 add alert owner:@bob now", FollowUp(K, "add alert now", "bob")),
    ("followup owner:<@U9> add alert", FollowUp(None, "add alert", "U9")),
    ("followup ask @carol about limits", FollowUp(None, "ask @carol about limits")),
    ("followup @alice ask @carol", FollowUp(None, "ask @carol", "alice")),
    ("followup ping @here", FollowUp(None, "ping @here")),
    ("followup @alice", FollowUp(None, "@alice")),
    # resolve, reopen
    ("resolve", Resolve(None)),
    ("resolve INC-0042 pool size raised", Resolve(K, "pool size raised")),
    ("reopen", Reopen(None)),
    ("reopen INC-0042 errors are back", Reopen(K, "errors are back")),
    # list
    ("list", List(all=False)),
    ("list open", List(all=False)),
    ("list all", List(all=True)),
    ("list --all", List(all=True)),
    # runbook steps
    ("diag", DiagCmd(None)),
    ("diag INC-0042", DiagCmd(K)),
    ("diag check-db", DiagCmd(None, "check-db")),
    ("diag host=db1", DiagCmd(None, None, {"host": "db1"})),
    (
        'diag #4 check-db host=db1 query="select 1" q=a=b empty=',
        DiagCmd("INC-4", "check-db", {"host": "db1", "query": "select 1", "q": "a=b", "empty": ""}),
    ),
    ("run restart-api", RunCmd(None, "restart-api")),
    (
        "run INC-0042 scale replicas=4 svc.name=api",
        RunCmd(K, "scale", {"replicas": "4", "svc.name": "api"}),
    ),
    ("run “restart api” reason=“it hangs”", RunCmd(None, "restart api", {"reason": "it hangs"})),
]


@pytest.mark.parametrize(("text", "expected"), HAPPY, ids=[t or "<empty>" for t, _ in HAPPY])
def test_parses(text: str, expected: Command) -> None:
    assert parse(text) == expected


def test_key_prefix_is_configurable() -> None:
    assert parse("ack ops-7", key_prefix="OPS") == Ack("OPS-7")
    assert parse("ack #7", key_prefix="OPS") == Ack("OPS-7")
    with pytest.raises(UsageError, match="only an incident key such as `OPS-42`"):
        parse("ack INC-7", key_prefix="OPS")
    assert parse("note INC-7 saw this before", key_prefix="OPS") == Note(
        None, "INC-7 saw this before"
    )


def test_a_bad_key_prefix_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="key prefix"):
        parse("", key_prefix="IN C")


def test_severities_reach_the_scheme_as_typed() -> None:
    for text in ("sev p1", "sev 1", "sev P1", "sev critical"):
        cmd = parse(text)
        assert isinstance(cmd, Sev)
        assert P1_P4.get(cmd.severity).name == "P1"


ERRORS: list[tuple[str, str, str]] = [
    # (text, the message contains, usage of)
    (
        "declare sev:P1 service:db",
        "`declare` needs a title, e.g. `/incident declare Checkout is failing sev:P1`.",
        "declare",
    ),
    ("declare DB down sev:", "`sev:` needs a value, e.g. `sev:P1`.", "declare"),
    ("declare DB down --sev", "`--sev` needs a value, e.g. `--sev P1`.", "declare"),
    ("declare DB down -s", "`-s` needs a value, e.g. `-s P1`.", "declare"),
    (
        'declare DB down impact:""',
        '`impact:` needs a value, e.g. `impact:"checkout fails"`.',
        "declare",
    ),
    ("declare DB down sev:P1 -s P2", "The severity is given twice; give it once.", "declare"),
    (
        "declare DB down lead:alice",
        "`alice` is not a person: mention one, e.g. `@alice`.",
        "declare",
    ),
    ('declare DB "down', "A double quote is not closed", "declare"),
    ("declare DB “down", "A double quote is not closed", "declare"),
    ("ack now", "`ack` takes only an incident key such as `INC-42`; remove `now`.", "ack"),
    ("ack 42", "remove `42`", "ack"),
    ("update INC-0042 please", "remove `please`", "update"),
    ("runbook db", "remove `db`", "runbook"),
    ("postmortem INC-1 INC-2", "remove `INC-2`", "postmortem"),
    ("sev", "`sev` needs a severity, e.g. `/incident sev P1`.", "sev"),
    ("sev INC-0042", "`sev` needs a severity", "sev"),
    (
        "status",
        "`status` needs one of investigating, identified, mitigating, monitoring, resolved",
        "status",
    ),
    (
        "status mitigated",
        "Unknown status `mitigated`. Did you mean `mitigating`? Use one of",
        "status",
    ),
    ("status INC-0042 fixed", "Unknown status `fixed`. Use one of", "status"),
    ("lead", "`lead` needs a person, e.g. `/incident lead @alice`.", "lead"),
    ("lead INC-0042", "`lead` needs a person", "lead"),
    ("lead alice", "`alice` is not a person: mention one, e.g. `@alice`.", "lead"),
    ("lead @alice @bob", "`lead` takes one person; remove `@bob`.", "lead"),
    ("comms <!subteam^S123|@oncall>", "`@oncall` is a user group; name one person", "comms"),
    ("scribe <#C123|general>", "`#general` is a channel; name a person", "scribe"),
    ("scribe @here", "`@here` is not a person", "scribe"),
    ("role", "`role` needs a role, then a person, e.g. `/incident role scribe @alice`.", "role"),
    ("role @alice", "`role` needs a role, then a person", "role"),
    ("role scribe", "`role` needs a person, e.g. `/incident role scribe @alice`.", "role"),
    ("role 9lives @alice", "`9lives` is not a role name, e.g. `scribe`.", "role"),
    ("note", "`note` needs text, e.g. `/incident note restarted the api pods`.", "note"),
    ("note INC-0042", "`note` needs text", "note"),
    (
        "timeline many",
        "`timeline` takes a number of events, e.g. `/incident timeline 50`.",
        "timeline",
    ),
    ("timeline 5 10", "`timeline` takes a number of events", "timeline"),
    ("timeline -1", "`timeline` takes a number of events", "timeline"),
    ("timeline 0", "`timeline` shows 1 to 200 events, not 0.", "timeline"),
    ("timeline 201", "`timeline` shows 1 to 200 events, not 201.", "timeline"),
    ("timeline 99999999999999999999", "shows 1 to 200 events, not 9999", "timeline"),
    ("timeline ²", "`timeline` takes a number of events", "timeline"),
    (
        "followup",
        "`followup` needs text, e.g. `/incident followup add a queue alert @alice`.",
        "followup",
    ),
    ("followup owner:@bob", "`followup` needs text", "followup"),
    ("followup x owner:@a owner:@b", "`followup` takes one `owner:`; give it once.", "followup"),
    ("followup x owner:", "No person given: mention one, e.g. `@alice`.", "followup"),
    ("followup x owner:bob", "`bob` is not a person", "followup"),
    ("list mine", "`list` takes `all` or nothing; remove `mine`.", "list"),
    ("list all open", "remove `all open`", "list"),
    ("help me please", "`help` takes one subcommand, e.g. `/incident help declare`.", "help"),
    ("help sevv", "`sevv` is not a subcommand. Did you mean `sev`?", "help"),
    ("run", "`run` needs a mitigation step, e.g. `/incident run restart-api`.", "run"),
    ("run INC-0042 replicas=4", "`run` needs a mitigation step", "run"),
    (
        "run scale replicas=4 now",
        "`run` takes one step, then `name=value` parameters; `now` is neither.",
        "run",
    ),
    ("diag a b", "`b` is neither.", "diag"),
    ('diag check "host=db 1"', 'is neither (quote only the value: `name="a b"`).', "diag"),
    ("diag check 1x=2", "`1x` is not a parameter name", "diag"),
    ("diag check =2", "`` is not a parameter name", "diag"),
    ("diag check a=1 a=2", "The parameter `a` is given twice; give it once.", "diag"),
    ('diag ""', "`diag` needs a step name, not an empty one.", "diag"),
    ('diag check host="db', "A double quote is not closed", "diag"),
]


@pytest.mark.parametrize(("text", "message", "usage_of"), ERRORS, ids=[e[0] for e in ERRORS])
def test_usage_errors_say_what_is_wrong(text: str, message: str, usage_of: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert message in caught.value.message
    assert str(caught.value) == caught.value.message
    assert caught.value.usage == USAGE[usage_of]
    assert isinstance(caught.value, UserError)


UNKNOWN: list[tuple[str, list[str]]] = [
    ("decalre DB down", ["declare"]),
    ("acknowlege", ["ack"]),
    ("stauts mitigating", ["status", "statuspage"]),
    ("folowup x", ["followup"]),
    ("timline", ["timeline"]),
    ("resolv", ["resolve", "role"]),
    ("lsit all", ["list"]),
    ("xyzzy", []),
]


@pytest.mark.parametrize(("text", "suggested"), UNKNOWN, ids=[u[0] for u in UNKNOWN])
def test_an_unknown_subcommand_suggests_the_nearest(text: str, suggested: list[str]) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    message = caught.value.message
    word = text.split()[0]
    assert message.startswith(f"`{word}` is not a subcommand.")
    if suggested:
        assert f"Did you mean {' or '.join(f'`{s}`' for s in suggested)}?" in message
    else:
        assert "Did you mean" not in message
    assert "Subcommands: declare, ack, sev, status, lead," in message
    assert caught.value.usage == TOP_USAGE


def test_a_key_before_the_subcommand_is_pointed_out() -> None:
    with pytest.raises(UsageError, match=r"Put the subcommand first: `/incident ack INC-0042`"):
        parse("INC-0042 ack")
    with pytest.raises(UsageError, match=r"`/incident <subcommand> #42`"):
        parse("#42")


def test_user_text_in_messages_is_shortened_and_cannot_break_the_backticks() -> None:
    with pytest.raises(UsageError) as caught:
        parse("ack `" + "x" * 100)
    assert "`'xxxxxxxx" in caught.value.message
    assert "…`." in caught.value.message
    assert "x" * 41 not in caught.value.message


@pytest.mark.parametrize(
    ("text", "user"),
    [
        ("<@U012ABC|alice>", "U012ABC"),
        ("<@U012ABC>", "U012ABC"),
        (" <@W012ABC|alice.smith> ", "W012ABC"),
        ("<@U012ABC|Alice Smith>", "U012ABC"),
        ("@alice", "alice"),
        ("@alice.smith", "alice.smith"),
        ("@bob-2", "bob-2"),
    ],
)
def test_parse_mention(text: str, user: str) -> None:
    assert parse_mention(text) == user


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "No person given"),
        ("alice", "`alice` is not a person"),
        ("@", "`@` is not a person"),
        ("@here", "`@here` is not a person"),
        ("<!channel>", "`<!channel>` is not a person"),
        ("<!subteam^S123|@oncall>", "`@oncall` is a user group"),
        ("<!subteam^S123>", "`@S123` is a user group"),
        ("<#C123|general>", "`#general` is a channel"),
        ("<@U1|a> <@U2|b>", "is not a person"),
    ],
)
def test_parse_mention_refuses_what_is_not_one_person(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_mention(text)


def test_help_covers_every_subcommand_with_its_usage() -> None:
    text = help_text()
    assert text.startswith("*`/incident` subcommands*\n`[key]` is an incident key such as `INC-42`")
    for name, line in HELP.items():
        assert line.startswith(f"`{USAGE[name]}`: ")
        assert f"• {line}" in text
        assert USAGE[name].startswith(f"/incident {name}")
        assert isinstance(parse(f"help {name}"), Help)
    assert "`OPS-42`" in help_text(None, key_prefix="OPS")


def test_help_on_one_subcommand_names_its_aliases() -> None:
    assert help_text("sev") == HELP["sev"] + "\nAlso written `severity`."
    assert help_text("IC") == HELP["lead"] + "\nAlso written `commander`, `ic`."
    assert help_text("note") == HELP["note"]
    with pytest.raises(UsageError, match="`nope` is not a subcommand"):
        help_text("nope")


WORDS = [
    *USAGE, "INC-0042", "#42", "P1", "p1", "1", "sev:", "sev:P1", "--sev", "-s", "impact:",
    "lead:", "owner:", "owner:@a", "@alice", "<@U012ABC|alice>", "<@U1>", "<!subteam^S1|@x>",
    "<#C1|c>", "a=b", "=", '"', "“", "”", "<", ">", "`", "all", "mitigating", "0", "200", "201",
]  # fmt: skip
texts = st.text() | st.lists(st.sampled_from(WORDS) | st.text(max_size=5), max_size=8).map(" ".join)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_any_text_is_a_command_or_a_usage_error(text: str) -> None:
    try:
        outcome: Command | UsageError = parse(text)
    except UsageError as error:
        outcome = error
    if isinstance(outcome, UsageError):
        assert outcome.message
        assert outcome.usage
    else:
        assert isinstance(outcome, get_args(Command))
