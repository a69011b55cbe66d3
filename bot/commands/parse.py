"""Parse the text of ``/incident …`` into typed commands: pure, no I/O, no Slack client.

Grammar (``[key]`` is an optional incident key given first, ``INC-0042``, ``inc-42`` or
``#42``; without it the Slack adapter acts on the incident of the channel)::

    declare <title…> [sev:P1 | --sev P1 | -s P1] [service:db] [impact:"text"] [lead:@person]
    ack [key]                        update [key]              runbook [key]
    sev [key] <severity> [reason…]   note [key] <text…>        postmortem [key]
    status [key] <status> [note…]    timeline [key] [count]    list [all]
    lead | comms | scribe [key] <@person>                      help [subcommand]
    role [key] <role> <@person>      resolve [key] [summary…]  reopen [key] [reason…]
    followup [key] [@owner] <text…> [@owner | owner:@person]
    diag [key] [step] [name=value…]  run [key] <step> [name=value…]
    cancel <run id>
    silence [key] <1h | 4h | until-resolved> [name=value | name!=value | name=~regex …]
    unsilence [key] [silence id]
    page [key] <target>
    statuspage [open | update | resolve] [key] [page]

Free text (notes, reasons, summaries, follow-ups) is kept exactly as Slack sent it, mentions
and ``&amp;`` escapes included. Where options are parsed (``declare``, ``diag``, ``run``),
double quotes, straight or curly (``"…"``, ``“…”``), keep words together; single quotes are
apostrophes. A person is an escaped mention ``<@U012ABC|alice>`` (the id ``U012ABC`` is
kept) or a plain ``@alice`` (the name ``alice`` is kept).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, TypeAlias

from bot.errors import InvalidInput, UserError
from bot.store.models import Status

TIMELINE_DEFAULT = 20
TIMELINE_MAX = 200


class UsageError(UserError):
    """A subcommand written wrongly: the message says what is wrong, ``usage`` how to write it."""

    def __init__(self, message: str, *, usage: str) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


# -- commands -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Declare:
    title: str
    severity: str | None = None
    service: str | None = None
    impact: str | None = None
    commander: str | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    key: str | None


@dataclass(frozen=True, slots=True)
class Sev:
    key: str | None
    severity: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SetStatus:
    key: str | None
    status: Status
    note: str = ""


@dataclass(frozen=True, slots=True)
class Assign:
    key: str | None
    role: str
    user: str


@dataclass(frozen=True, slots=True)
class Update:
    key: str | None


@dataclass(frozen=True, slots=True)
class Note:
    key: str | None
    text: str


@dataclass(frozen=True, slots=True)
class Timeline:
    key: str | None
    limit: int = TIMELINE_DEFAULT


@dataclass(frozen=True, slots=True)
class FollowUp:
    key: str | None
    text: str
    owner: str | None = None
    tracker: str | None = None  # the ticket target (``tracker:<name>``)


@dataclass(frozen=True, slots=True)
class FileFollowUps:
    """``followup file <id|all>``: file existing follow-ups as tickets (``number`` None: all)."""

    key: str | None
    number: int | None
    tracker: str | None = None


@dataclass(frozen=True, slots=True)
class Resolve:
    key: str | None
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Reopen:
    key: str | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class List:
    all: bool = False


@dataclass(frozen=True, slots=True)
class Help:
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class RunbookCmd:
    key: str | None


@dataclass(frozen=True, slots=True)
class DiagCmd:
    key: str | None
    step: str | None = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunCmd:
    key: str | None
    step: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CancelCmd:
    """Withdraw a pending mitigation request, by the run id its message shows."""

    run_id: int


@dataclass(frozen=True, slots=True)
class SilenceCmd:
    """Preview a silence of the incident's alerts; ``matchers`` are (name, op, value)."""

    key: str | None
    duration: str
    matchers: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class UnsilenceCmd:
    key: str | None
    silence_id: str | None = None


@dataclass(frozen=True, slots=True)
class PageCmd:
    """Page a configured target (``paging.pagerduty`` or ``paging.opsgenie``) by hand."""

    key: str | None
    target: str


@dataclass(frozen=True, slots=True)
class StatusPageCmd:
    """Preview a status page message (``open``, ``update``, ``resolve``; none: the next one)."""

    key: str | None
    action: str | None = None
    target: str | None = None


@dataclass(frozen=True, slots=True)
class PostmortemCmd:
    key: str | None
    export: bool = False  # ``postmortem export [target]``: to export.targets, not a draft
    target: str | None = None  # the export target; None = every configured one


Command: TypeAlias = (
    Declare | Ack | Sev | SetStatus | Assign | Update | Note | Timeline | FollowUp | Resolve
    | Reopen | List | Help | RunbookCmd | DiagCmd | RunCmd | CancelCmd | PostmortemCmd
    | SilenceCmd | UnsilenceCmd | PageCmd | StatusPageCmd | FileFollowUps
)  # fmt: skip

# -- help -----------------------------------------------------------------

_SPEC: dict[str, tuple[str, str]] = {
    "declare": (
        '/incident declare <title> [sev:P1] [service:name] [impact:"text"] [lead:@person]',
        "Open an incident (without a title: a form).",
    ),
    "ack": ("/incident ack [key]", "Acknowledge the incident: you are on it."),
    "sev": ("/incident sev [key] <severity> [reason]", "Change the severity, e.g. to `P1`."),
    "status": (
        "/incident status [key] <status> [note]",
        "Move to " + ", ".join(f"`{s.value}`" for s in Status) + ".",
    ),
    "lead": ("/incident lead [key] @person", "Make someone the incident commander."),
    "comms": ("/incident comms [key] @person", "Make someone the communications lead."),
    "scribe": ("/incident scribe [key] @person", "Make someone the scribe."),
    "role": ("/incident role [key] <role> @person", "Give someone any role."),
    "update": ("/incident update [key]", "Post a status update from a prefilled form."),
    "note": ("/incident note [key] <text>", "Add a note to the timeline."),
    "timeline": (
        "/incident timeline [key] [count]",
        f"Show you the last {TIMELINE_DEFAULT} events, or `count` of them (up to {TIMELINE_MAX}).",
    ),
    "followup": (
        "/incident followup [key] <text> [@owner] [tracker:<name>] | followup [key] file <id|all>",
        "Record a follow-up action (filed as a ticket when tickets are configured).",
    ),
    "resolve": ("/incident resolve [key] [summary]", "Resolve, with root cause and resolution."),
    "reopen": ("/incident reopen [key] [reason]", "Reopen a resolved incident."),
    "list": ("/incident list [all]", "Show open incidents; `all` includes resolved ones."),
    "runbook": ("/incident runbook [key]", "Show the runbook for the incident."),
    "diag": ("/incident diag [key] [step] [name=value…]", "Run the diagnostics, or one step."),
    "run": ("/incident run [key] <mitigation> [name=value…]", "Run a mitigation step."),
    "cancel": (
        "/incident cancel <run id>",
        "Withdraw a mitigation request that waits for confirmation or approval.",
    ),
    "silence": (
        "/incident silence [key] <1h|4h|until-resolved> [name=value…]",
        "Silence the incident's alerts in Alertmanager (a preview first, then confirm).",
    ),
    "unsilence": ("/incident unsilence [key] [silence id]", "Expire the incident's silences."),
    "page": ("/incident page [key] <target>", "Page an on-call target (e.g. PagerDuty) by hand."),
    "statuspage": (
        "/incident statuspage [open|update|resolve] [key] [page]",
        "Publish to the public status page (a preview of the exact text first, then confirm).",
    ),
    "postmortem": (
        "/incident postmortem [key] [export [target]]",
        "Draft the post-mortem, or export it (Confluence, GitHub).",
    ),
    "help": ("/incident help [subcommand]", "Show this help, or one subcommand's."),
}
USAGE: dict[str, str] = {name: usage for name, (usage, _) in _SPEC.items()}
HELP: dict[str, str] = {name: f"`{usage}`: {what}" for name, (usage, what) in _SPEC.items()}
TOP_USAGE = "/incident <subcommand> [arguments]   (`/incident help` lists them)"

_ALIASES = {
    "acknowledge": "ack",
    "severity": "sev",
    "commander": "lead",
    "ic": "lead",
    "communications": "comms",
    "follow-up": "followup",
    "post-mortem": "postmortem",
    "status-page": "statuspage",
}
_ROLE_ALIASES = {"lead": "commander", "ic": "commander", "comms": "communications"}


def help_text(topic: str | None = None, *, key_prefix: str = "INC") -> str:
    """The ephemeral help: every subcommand, or one (Slack mrkdwn)."""
    if topic is None:
        head = [
            "*`/incident` subcommands*",
            f"`[key]` is an incident key such as `{key_prefix}-42`; "
            "in an incident's channel you can leave it out.",
        ]
        return "\n".join([*head, *(f"• {line}" for line in HELP.values())])
    name = _ALIASES.get(topic.lower(), topic.lower())
    if name not in HELP:
        raise _unknown(topic, USAGE["help"])
    aliases = [f"`{alias}`" for alias, target in _ALIASES.items() if target == name]
    return HELP[name] + (f"\nAlso written {', '.join(aliases)}." if aliases else "")


# -- mentions -------------------------------------------------------------

_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")
_NAME = re.compile(r"@(\w(?:[\w.-]*\w)?)")
_GROUP = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|@?([^<>]*))?>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^<>]*))?>")
_NOT_PEOPLE = frozenset({"here", "channel", "everyone"})


def _person(word: str) -> str | None:
    if match := _USER.fullmatch(word):
        return match.group(1)
    match = _NAME.fullmatch(word)
    return match.group(1) if match and match.group(1).lower() not in _NOT_PEOPLE else None


def parse_mention(text: str) -> str:
    """``<@U012ABC|alice>`` or ``<@U012ABC>`` → ``U012ABC``; ``@alice`` → ``alice``."""
    text = text.strip()
    if (person := _person(text)) is not None:
        return person
    if not text:
        raise InvalidInput("No person given: mention one, e.g. `@alice`.")
    if match := _GROUP.fullmatch(text):
        name = match.group(2) or match.group(1)
        raise InvalidInput(f"`@{_show(name)}` is a user group; name one person, e.g. `@alice`.")
    if match := _CHANNEL.fullmatch(text):
        name = match.group(2) or match.group(1)
        raise InvalidInput(f"`#{_show(name)}` is a channel; name a person, e.g. `@alice`.")
    raise InvalidInput(f"`{_show(text)}` is not a person: mention one, e.g. `@alice`.")


# -- words, quotes and keys -----------------------------------------------

_QUOTES = '"“”„‟'
_WORD = re.compile(r"(?:<[^<>\n]*>|[^\s<]+|<)+")
_CHUNK = re.compile(rf"<[^<>\n{_QUOTES}]*>|\s+|[{_QUOTES}]|[^\s<{_QUOTES}]+|<")
_OPTION = re.compile(r"(--?)?([A-Za-z][A-Za-z-]*)(?:([:=])|$)")
_PARAM = re.compile(r"([^=]*)=")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_ROLE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


class _Token(NamedTuple):
    text: str  # the word with its quotes taken out
    bare: str  # the part before the first quote: only it can name an option


def _show(text: str, limit: int = 40) -> str:
    """User text made safe to put between backticks in a message."""
    text = " ".join(text.replace("`", "'").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _split(text: str) -> tuple[str, str]:
    """The first word and the rest, both stripped."""
    text = text.strip()
    match = _WORD.match(text)
    return (match.group(), text[match.end() :].strip()) if match else ("", "")


@functools.lru_cache(maxsize=8)
def _key_pattern(prefix: str) -> re.Pattern[str]:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,9}", prefix):
        raise ValueError(f"key prefix {prefix!r} must be a letter then up to 9 letters or digits")
    return re.compile(rf"(?:(?i:{prefix})-([0-9]{{1,9}})|#([0-9]{{1,9}}))")


def _did_you_mean(word: str, choices: list[str]) -> str:
    guesses = difflib.get_close_matches(word.lower(), choices, n=3, cutoff=0.6)
    names = dict.fromkeys(_ALIASES.get(g, g) for g in guesses)
    return f" Did you mean {' or '.join(f'`{n}`' for n in names)}?" if names else ""


def _unknown(word: str, usage: str) -> UsageError:
    hint = _did_you_mean(word, [*_SPEC, *_ALIASES])
    return UsageError(
        f"`{_show(word)}` is not a subcommand.{hint} Subcommands: {', '.join(_SPEC)}.",
        usage=usage,
    )


@dataclass
class _Args:
    """What follows a subcommand, consumed from the left."""

    name: str
    rest: str
    prefix: str

    def error(self, message: str) -> UsageError:
        return UsageError(message, usage=USAGE[self.name])

    def key(self) -> str | None:
        word, rest = _split(self.rest)
        match = _key_pattern(self.prefix).fullmatch(word)
        if not match:
            return None
        self.rest = rest
        return f"{self.prefix.upper()}-{match.group(1) or match.group(2)}"

    def done(self) -> None:
        if self.rest:
            raise self.error(
                f"`{self.name}` takes only an incident key such as `{self.prefix.upper()}-42`; "
                f"remove `{_show(self.rest)}`."
            )

    def person(self, word: str) -> str:
        try:
            return parse_mention(word)
        except InvalidInput as error:
            raise self.error(str(error)) from None

    def tokens(self) -> list[_Token]:
        """Words split on white space, with double-quoted parts kept together."""
        tokens: list[_Token] = []
        chars: list[str] = []
        bare: str | None = None
        started = quoted = False
        for chunk in _CHUNK.findall(self.rest):
            if chunk in _QUOTES:
                bare = "".join(chars) if bare is None else bare
                started, quoted = True, not quoted
            elif chunk[0].isspace() and not quoted:
                if started:
                    text = "".join(chars)
                    tokens.append(_Token(text, text if bare is None else bare))
                chars, bare, started = [], None, False
            else:
                chars.append(chunk)
                started = True
        if quoted:
            raise self.error("A double quote is not closed: close it, or leave the quotes out.")
        if started:
            text = "".join(chars)
            tokens.append(_Token(text, text if bare is None else bare))
        return tokens


# -- the subcommands ------------------------------------------------------

_Parser: TypeAlias = Callable[[_Args], Command]

_DECLARE_OPTIONS = {"sev": "severity", "lead": "commander"} | {
    name: name for name in ("severity", "service", "impact", "commander")
}
_EXAMPLES = {"severity": "P1", "service": "db", "impact": '"checkout fails"', "commander": "@alice"}


def _declare(a: _Args) -> Declare:
    title: list[str] = []
    values: dict[str, str] = {}
    tokens = iter(a.tokens())
    for token in tokens:
        match = _OPTION.match(token.bare)
        dash, word, sep = match.groups() if match else (None, "", None)
        name = "severity" if dash == "-" and word == "s" else None
        if dash in (None, "--") and (sep or dash):
            name = _DECLARE_OPTIONS.get(word.lower())
        if match is None or name is None or (not sep and token.bare != token.text):
            title.append(token.text)
            continue
        shown = token.text[: match.end()] if sep else f"{token.text} "
        value = token.text[match.end() :] if sep else next(tokens, _Token("", "")).text
        if not value.strip():
            raise a.error(f"`{shown.strip()}` needs a value, e.g. `{shown}{_EXAMPLES[name]}`.")
        if name in values:
            raise a.error(f"The {name} is given twice; give it once.")
        values[name] = a.person(value) if name == "commander" else value.strip()
    if not title and not values:
        return Declare("")  # no title at all: the declare form asks for one
    if not title:
        raise a.error(
            "`declare` needs a title, e.g. `/incident declare Checkout is failing sev:P1`."
        )
    return Declare(" ".join(title), **values)


def _sev(a: _Args) -> Sev:
    key = a.key()
    severity, reason = _split(a.rest)
    if not severity:
        raise a.error("`sev` needs a severity, e.g. `/incident sev P1`.")
    return Sev(key, severity, reason)


def _status(a: _Args) -> SetStatus:
    key = a.key()
    word, note = _split(a.rest)
    names = [s.value for s in Status]
    if not word:
        raise a.error(
            f"`status` needs one of {', '.join(names)}, e.g. `/incident status mitigating`."
        )
    try:
        return SetStatus(key, Status(word.lower()), note)
    except ValueError:
        hint = _did_you_mean(word, names)
        raise a.error(
            f"Unknown status `{_show(word)}`.{hint} Use one of {', '.join(names)}."
        ) from None


def _assign(a: _Args, role: str | None) -> Assign:
    key = a.key()
    words = _WORD.findall(a.rest)
    if role is None:
        if not words or _person(words[0]) is not None:
            raise a.error(
                "`role` needs a role, then a person, e.g. `/incident role scribe @alice`."
            )
        role = words.pop(0).lower()
        if not _ROLE_NAME.fullmatch(role):
            raise a.error(f"`{_show(role)}` is not a role name, e.g. `scribe`.")
    if not words:
        example = f"/incident {a.name} {'scribe ' if a.name == 'role' else ''}@alice"
        raise a.error(f"`{a.name}` needs a person, e.g. `{example}`.")
    if len(words) > 1:
        raise a.error(f"`{a.name}` takes one person; remove `{_show(' '.join(words[1:]))}`.")
    return Assign(key, _ROLE_ALIASES.get(role, role), a.person(words[0]))


def _timeline(a: _Args) -> Timeline:
    key = a.key()
    words = _WORD.findall(a.rest)
    if not words:
        return Timeline(key)
    if len(words) > 1 or not re.fullmatch(r"[0-9]+", words[0]):
        raise a.error("`timeline` takes a number of events, e.g. `/incident timeline 50`.")
    limit = int(words[0]) if len(words[0]) <= 6 else TIMELINE_MAX + 1
    if not 1 <= limit <= TIMELINE_MAX:
        raise a.error(f"`timeline` shows 1 to {TIMELINE_MAX} events, not {_show(words[0])}.")
    return Timeline(key, limit)


_FILE_WHICH = re.compile(r"(?:#?([0-9]{1,9})|(all))", re.IGNORECASE)


def _tracker(a: _Args, text: str) -> tuple[str, str | None]:
    """``tracker:<name>`` anywhere in ``text``: (the rest, the name)."""
    words = [w for w in _WORD.finditer(text) if w.group()[:8].lower() in ("tracker:", "tracker=")]
    if not words:
        return text, None
    if len(words) > 1:
        raise a.error("`followup` takes one `tracker:`; give it once.")
    name = words[0].group()[8:].strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", name):
        raise a.error(
            f"`tracker:` needs a ticket target's name, e.g. `tracker:jira`, not `{_show(name)}`."
        )
    rest = f"{text[: words[0].start()].rstrip()} {text[words[0].end() :].lstrip()}".strip()
    return rest, name


def _followup(a: _Args) -> FollowUp | FileFollowUps:
    """The owner is ``owner:@x`` anywhere, else a mention opening or closing the text.

    ``file <id|all>`` (and nothing else but ``tracker:``) files existing follow-ups instead.
    """
    key = a.key()
    rest, tracker = _tracker(a, a.rest)
    head, tail = _split(rest)
    if head.lower() == "file" and (match := _FILE_WHICH.fullmatch(tail.strip())):
        number = int(match.group(1)) if match.group(1) else None
        return FileFollowUps(key, number, tracker)
    if head.lower() == "file" and not tail.strip():
        raise a.error(
            "`followup file` needs a follow-up's number or `all`, e.g. `followup file 3`."
        )
    text, owner = rest, None
    words = list(_WORD.finditer(text))
    given = [w for w in words if w.group()[:6].lower() in ("owner:", "owner=")]
    if len(given) > 1:
        raise a.error("`followup` takes one `owner:`; give it once.")
    if given:
        owner = a.person(given[0].group()[6:])
        text = f"{text[: given[0].start()].rstrip()} {text[given[0].end() :].lstrip()}".strip()
    elif len(words) > 1 and (owner := _person(words[0].group())) is not None:
        text = text[words[0].end() :].strip()
    elif len(words) > 1 and (owner := _person(words[-1].group())) is not None:
        text = text[: words[-1].start()].strip()
    if not text:
        raise a.error("`followup` needs text, e.g. `/incident followup add a queue alert @alice`.")
    return FollowUp(key, text, owner, tracker)


def _steps(a: _Args) -> tuple[str | None, str | None, dict[str, str]]:
    """``[key] [step] [name=value…]``: the step is the first word that is not a parameter."""
    key = a.key()
    step: str | None = None
    params: dict[str, str] = {}
    for token in a.tokens():
        match = _PARAM.match(token.bare)
        if match is None and step is None and not params:
            step = token.text.strip()
            if not step:
                raise a.error(f"`{a.name}` needs a step name, not an empty one.")
            continue
        if match is None:
            hint = ' (quote only the value: `name="a b"`)' if "=" in token.text else ""
            raise a.error(
                f"`{a.name}` takes one step, then `name=value` parameters; "
                f"`{_show(token.text)}` is neither{hint}."
            )
        name = match.group(1)
        if not _PARAM_NAME.fullmatch(name):
            raise a.error(f"`{_show(name)}` is not a parameter name: use letters, digits, _ . -")
        if name in params:
            raise a.error(f"The parameter `{name}` is given twice; give it once.")
        params[name] = token.text[match.end() :]
    return key, step, params


def _run(a: _Args) -> RunCmd:
    key, step, params = _steps(a)
    if step is None:
        raise a.error("`run` needs a mitigation step, e.g. `/incident run restart-api`.")
    return RunCmd(key, step, params)


def _cancel(a: _Args) -> CancelCmd:
    words = _WORD.findall(a.rest)
    number = words[0].removeprefix("#") if len(words) == 1 else ""
    if not re.fullmatch(r"[0-9]{1,18}", number):
        raise a.error(
            "`cancel` takes the run id of a pending mitigation (its message shows it), "
            "e.g. `/incident cancel 12`."
        )
    return CancelCmd(int(number))


_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(=~|!~|!=|=)")
SILENCE_DURATIONS = ("1h", "4h", "until-resolved")


def _silence(a: _Args) -> SilenceCmd:
    """``[key] <duration> [matcher…]``; a matcher's value may be double-quoted."""
    key = a.key()
    tokens = a.tokens()
    if not tokens:
        raise a.error("`silence` needs a duration: `1h`, `4h` or `until-resolved`.")
    duration = tokens[0].text.strip().lower().replace("_", "-")
    if duration not in SILENCE_DURATIONS:
        raise a.error(
            f"`{_show(tokens[0].text)}` is not a silence duration: use `1h`, `4h` or "
            "`until-resolved`, e.g. `/incident silence 1h`."
        )
    matchers: list[tuple[str, str, str]] = []
    for token in tokens[1:]:
        match = _MATCHER.match(token.bare)
        if match is None:
            raise a.error(
                f"`{_show(token.text)}` is not a matcher: write `name=value`, `name!=value`, "
                '`name=~regex` or `name!~regex` (quote a value with spaces: `name="a b"`).'
            )
        name, op = match.groups()
        if any(m[0] == name for m in matchers):
            raise a.error(f"The label `{name}` is matched twice; match it once.")
        matchers.append((name, op, token.text[match.end() :]))
    return SilenceCmd(key, duration, tuple(matchers))


def _unsilence(a: _Args) -> UnsilenceCmd:
    key = a.key()
    words = _WORD.findall(a.rest)
    if len(words) > 1 or (words and not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", words[0])):
        raise a.error("`unsilence` takes at most a silence id, e.g. `/incident unsilence 3f2a`.")
    return UnsilenceCmd(key, words[0] if words else None)


def _page(a: _Args) -> PageCmd:
    key = a.key()
    words = _WORD.findall(a.rest)
    if len(words) != 1 or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,59}", words[0]):
        raise a.error("`page` takes one paging target, e.g. `/incident page oncall`.")
    return PageCmd(key, words[0])


STATUSPAGE_ACTIONS = ("open", "update", "resolve")


def _statuspage(a: _Args) -> StatusPageCmd:
    """``[key] [open|update|resolve] [key] [page]``: the key before or after the action."""
    key = a.key()
    words = _WORD.findall(a.rest)
    action = words[0].lower() if words and words[0].lower() in STATUSPAGE_ACTIONS else None
    if action is not None:
        a.rest = _split(a.rest)[1]
        key = key or a.key()
    words = _WORD.findall(a.rest)
    if len(words) > 1 or (words and not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", words[0])):
        raise a.error(
            f"`{_show(a.rest)}` is not a status page action or page name: use `open`, `update` "
            "or `resolve`, then optionally the page, e.g. `/incident statuspage open public`."
        )
    return StatusPageCmd(key, action, words[0] if words else None)


def _text(make: Callable[[str | None, str], Command], example: str = "") -> _Parser:
    """A subcommand taking ``[key]`` then free text (required when there is an example)."""

    def parse(a: _Args) -> Command:
        key = a.key()
        if example and not a.rest:
            raise a.error(f"`{a.name}` needs text, e.g. `/incident {a.name} {example}`.")
        return make(key, a.rest)

    return parse


def _postmortem(a: _Args) -> PostmortemCmd:
    key = a.key()
    words = _WORD.findall(a.rest)
    if not words:
        return PostmortemCmd(key)
    if words[0].lower() != "export":
        raise a.error(
            f"`postmortem` takes an incident key and `export [target]`; remove `{_show(a.rest)}`."
        )
    rest = words[1:]
    if key is None and rest and _key_pattern(a.prefix).fullmatch(rest[0]):
        a.rest = " ".join(rest)
        key, rest = a.key(), rest[1:]
    if len(rest) > 1 or (rest and not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", rest[0])):
        raise a.error(
            "`postmortem export` takes at most one export target, "
            "e.g. `/incident postmortem export wiki`."
        )
    return PostmortemCmd(key, export=True, target=rest[0] if rest else None)


def _key_only(make: Callable[[str | None], Command]) -> _Parser:
    def parse(a: _Args) -> Command:
        key = a.key()
        a.done()
        return make(key)

    return parse


def _list(a: _Args) -> List:
    words = [w.lower() for w in _WORD.findall(a.rest)]
    if words not in ([], ["open"], ["all"], ["--all"]):
        raise a.error(f"`list` takes `all` or nothing; remove `{_show(a.rest)}`.")
    return List(all=words in (["all"], ["--all"]))


def _help(a: _Args) -> Help:
    words = _WORD.findall(a.rest)
    if len(words) > 1:
        raise a.error("`help` takes one subcommand, e.g. `/incident help declare`.")
    if not words:
        return Help(None)
    topic = _ALIASES.get(words[0].lower(), words[0].lower())
    if topic not in _SPEC:
        raise _unknown(words[0], USAGE["help"])
    return Help(topic)


_PARSERS: dict[str, _Parser] = {
    "declare": _declare,
    "ack": _key_only(Ack),
    "sev": _sev,
    "status": _status,
    "lead": lambda a: _assign(a, "commander"),
    "comms": lambda a: _assign(a, "communications"),
    "scribe": lambda a: _assign(a, "scribe"),
    "role": lambda a: _assign(a, None),
    "update": _key_only(Update),
    "note": _text(Note, "restarted the api pods"),
    "timeline": _timeline,
    "followup": _followup,
    "resolve": _text(Resolve),
    "reopen": _text(Reopen),
    "list": _list,
    "runbook": _key_only(RunbookCmd),
    "diag": lambda a: DiagCmd(*_steps(a)),
    "run": _run,
    "cancel": _cancel,
    "silence": _silence,
    "unsilence": _unsilence,
    "page": _page,
    "statuspage": _statuspage,
    "postmortem": _postmortem,
    "help": _help,
}


def parse(text: str, *, key_prefix: str = "INC") -> Command:
    """The command ``text`` asks for; :class:`UsageError` says what is wrong with it."""
    key = _key_pattern(key_prefix)
    word, rest = _split(text)
    if not word:
        return Help(None)
    if key.fullmatch(word):
        after = _split(rest)[0].lower()
        sub = after if after in _SPEC else _ALIASES.get(after, "<subcommand>")
        raise UsageError(
            f"Put the subcommand first: `/incident {sub} {_show(word)}`.", usage=TOP_USAGE
        )
    name = _ALIASES.get(word.lower(), word.lower())
    parser = _PARSERS.get(name)
    if parser is None:
        raise _unknown(word, TOP_USAGE)
    return parser(_Args(name, rest, key_prefix))
