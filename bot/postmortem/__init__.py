"""The post-mortem draft: what the record says about one incident, computed once.

:func:`build_postmortem` reads the incident, its alerts, timeline, follow-ups and the
messages sent (one query per table, in one read-only transaction) and returns a
:class:`PostMortem`, a tree of frozen dataclasses with no Slack or web types in it.
:func:`render_markdown` renders one with ``postmortem.md.j2`` (which a user may
override from their templates directory); :func:`register_filters` adds the Markdown
filters that template needs to any Jinja2 environment.

The times, each measured from detection and from declaration::

    detected      the earliest of: the first alert's start, the incident's detected_at,
                  its declaration (on a tie, in that order of preference)
    acknowledged  incident.acknowledged_at (a person declaring has acknowledged)
    mitigated     incident.mitigated_at (status monitoring, or resolution)
    resolved      incident.resolved_at; while open, durations run to ``now``

A reopen clears the resolution, so the times are those of the last cycle; the
timeline keeps the earlier ones and the metrics count the reopens. Step runs are
read only from the timeline (``step_run``, ``step_refused``, ``step_approved``).

The modules, each depending only on those above it:

    model     the tree: PostMortem and the dataclasses of its sections
    record    the timeline's events as read, grouped by kind
    markdown  format_duration, the Markdown filters and render_markdown
    facts     the judgements: hints, observations, metrics, checklists
    prefill   the resolution drafted from the record (the resolve form's and the draft's)
    build     build_postmortem: reading the record and assembling the tree
"""

from __future__ import annotations

from bot.postmortem.build import (
    EVIDENCE_LIMIT,
    KEY_KINDS,
    MAX_COLUMNS,
    MAX_MARKERS,
    MAX_ROWS,
    TIMELINE_LIMIT,
    build_postmortem,
    detection_times,
)
from bot.postmortem.facts import HINTS_FROM_RUNS, REVIEW_WITHIN
from bot.postmortem.markdown import (
    TEMPLATE,
    format_duration,
    md_escape,
    md_fence,
    md_inline,
    md_link,
    register_filters,
    render_markdown,
)
from bot.postmortem.model import (
    ActionItem,
    AlertRecord,
    CheckItem,
    Metric,
    Person,
    Pinned,
    PostMortem,
    ResponseTime,
    SentMessage,
    SentUpdate,
    SeverityChange,
    Span,
    StepRun,
    TimelineEntry,
    Times,
)
from bot.postmortem.prefill import ResolvePrefill, load_prefill, prefill
from bot.postmortem.record import STEP_KINDS

__all__ = [
    "EVIDENCE_LIMIT",
    "HINTS_FROM_RUNS",
    "KEY_KINDS",
    "MAX_COLUMNS",
    "MAX_MARKERS",
    "MAX_ROWS",
    "REVIEW_WITHIN",
    "STEP_KINDS",
    "TEMPLATE",
    "TIMELINE_LIMIT",
    "ActionItem",
    "AlertRecord",
    "CheckItem",
    "Metric",
    "Person",
    "Pinned",
    "PostMortem",
    "ResolvePrefill",
    "ResponseTime",
    "SentMessage",
    "SentUpdate",
    "SeverityChange",
    "Span",
    "StepRun",
    "TimelineEntry",
    "Times",
    "build_postmortem",
    "detection_times",
    "format_duration",
    "load_prefill",
    "md_escape",
    "md_fence",
    "md_inline",
    "md_link",
    "prefill",
    "register_filters",
    "render_markdown",
]
