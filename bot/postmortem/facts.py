"""The judgements drawn from the record: root-cause hints, what went well and poorly,
response times against the severity's targets, metrics, and the runbooks' checklists
ticked from what the record shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.errors import InvalidSeverity
from bot.incidents.lifecycle import EventKind
from bot.incidents.severity import SeverityLevel, SeverityScheme
from bot.postmortem.markdown import format_duration
from bot.postmortem.model import (
    ActionItem,
    AlertRecord,
    CheckItem,
    Metric,
    Person,
    ResponseTime,
    SentUpdate,
    SeverityChange,
    Span,
    StepRun,
    Times,
)
from bot.postmortem.record import STEP_KINDS, ByKind
from bot.store.models import Incident

#: The runbook's expectation (``Post-Mortem (Within 48 hours)``).
REVIEW_WITHIN = timedelta(hours=48)
HINTS_FROM_RUNS = 10


class Facts:
    """The judgements drawn from the record: hints, observations, metrics, checklists."""

    def __init__(
        self,
        incident: Incident,
        times: Times,
        history: Sequence[SeverityChange],
        runs: Sequence[StepRun],
        shown: Sequence[StepRun],
        updates: Sequence[SentUpdate],
        alerts: Sequence[AlertRecord],
        items: Sequence[ActionItem],
        kinds: ByKind,
        scheme: SeverityScheme,
    ) -> None:
        self.incident = incident
        self.times = times
        self.history = [c for c in history if c.applied]
        self.runs = runs  # all of them: counts
        self.shown = shown  # those the draft shows: hints
        self.updates = updates
        self.alerts = alerts
        self.items = items
        self.kinds = kinds
        self.scheme = scheme

    def severity_at(self, moment: datetime) -> SeverityLevel | None:
        """The severity in force at ``moment`` (before the declaration: the declared one)."""
        name = self.history[0].level if self.history else self.incident.severity
        for change in self.history:
            if change.at <= moment:
                name = change.level
        return known_level(self.scheme, name)

    def _ack_target(self) -> tuple[SeverityLevel | None, bool | None]:
        t = self.times
        level = self.severity_at(t.acknowledged or t.as_of)
        took = t.to_acknowledge.from_detection
        if level is None:
            return None, None
        if took is None:  # missed once the response time ran out before it was over
            over = (t.resolved or t.as_of) - t.detected > level.response_time
            return level, (False if over else None)
        return level, took <= level.response_time

    def update_gaps(self) -> list[tuple[datetime, timedelta, SeverityLevel]]:
        """Each stretch without a message that outran its severity's update interval."""
        t = self.times
        points = [t.declared, *(u.at for u in self.updates)]
        end = t.resolved or t.as_of
        gaps = []
        for start, stop in zip(points, [*points[1:], end], strict=True):
            level = self.severity_at(start)
            if level is not None and stop - start > level.update_interval:
                gaps.append((start, stop - start, level))
        return gaps

    def hints(self) -> tuple[str, ...]:
        """Evidence a root cause should explain: bad readings, what fixed it, alerts, why
        the severity was what it was (at most :data:`HINTS_FROM_RUNS` of each kind of run)."""
        bad = [r for r in self.shown if r.grade in ("red", "yellow") and r.outcome == "ran"]
        fixes = [
            r
            for r in self.shown
            if r.kind == "mitigation" and r.outcome == "ran" and r.grade != "error"
        ]
        found = [
            f"{r.kind.capitalize()} {_step_name(r)} was {(r.grade or '').upper()} at "
            f"{r.at:%H:%M} UTC: {r.summary}"
            for r in bad[:HINTS_FROM_RUNS]
        ]
        found += [
            f"Mitigation {_step_name(r)} ran at {r.at:%H:%M} UTC: {r.summary}"
            for r in fixes[:HINTS_FROM_RUNS]
        ]
        for alert in self.alerts[:5]:
            found.append(
                f"Alert {alert.name} fired ({alert.count}×, first at {alert.first_seen:%H:%M} UTC)"
                + (f": {alert.summary}" if alert.summary and alert.summary != alert.name else "")
            )
        if len(self.alerts) > 5:
            found.append(f"… and {len(self.alerts) - 5} more alert(s) (see the appendix)")
        for change in self.history:
            if change.source != "default" and change.reason:
                found.append(f"Severity {change.level} ({change.source}): {change.reason}")
        return tuple(dict.fromkeys(found))

    def went_well(self) -> tuple[str, ...]:
        t, found = self.times, []
        if t.detected_from == "alert" and self.alerts:
            first = min(self.alerts, key=lambda a: a.started or a.first_seen)
            found.append(f"Detected by monitoring: {first.name} fired first.")
        level, met = self._ack_target()
        took = t.to_acknowledge.from_detection
        if met and level is not None and took is not None:
            found.append(
                f"Acknowledged {format_duration(took)} after detection, within the "
                f"{level.name} response time ({format_duration(level.response_time)})."
            )
        if self.updates and not self.update_gaps():
            found.append(
                f"{len(self.updates)} update(s) sent; none came later than the severity's "
                "update interval."
            )
        if t.mitigated is not None and t.to_mitigate.from_detection is not None:
            found.append(
                f"Mitigated {format_duration(t.to_mitigate.from_detection)} after detection."
            )
        return tuple(found)

    def went_poorly(self) -> tuple[str, ...]:
        t, found = self.times, []
        if not self.alerts:
            found.append("No alert fired: a person noticed it first.")
        elif t.detected_from != "alert":
            first = min(a.started or a.first_seen for a in self.alerts)
            found.append(f"The first alert came at {first:%H:%M} UTC, after a person noticed it.")
        level, met = self._ack_target()
        took = t.to_acknowledge.from_detection
        if met is False and level is not None:
            when = (
                "Never acknowledged"
                if took is None
                else f"Acknowledged {format_duration(took)} after detection"
            )
            target = format_duration(level.response_time)
            found.append(f"{when}; the {level.name} response time is {target}.")
        for start, gap, gap_level in self.update_gaps():
            found.append(
                f"No update for {format_duration(gap)} after {start:%H:%M} UTC; {gap_level.name} "
                f"asks for one every {format_duration(gap_level.update_interval)}."
            )
        for run in self.shown:
            if run.grade == "error":
                found.append(f"{run.kind.capitalize()} {_step_name(run)} failed: {run.summary}")
        reopened = self.kinds.count(EventKind.REOPENED)
        if reopened:
            found.append(f"Reopened {reopened} time(s) after being resolved.")
        return tuple(found)

    def response_times(self) -> tuple[ResponseTime, ...]:
        t = self.times
        level, met = self._ack_target()
        return (
            ResponseTime("Time to declare", Span(t.to_declare, None)),
            ResponseTime(
                "Time to acknowledge",
                t.to_acknowledge,
                level.response_time if level else None,
                level.name if level else None,
                met,
            ),
            ResponseTime("Time to mitigate", t.to_mitigate),
            ResponseTime("Time to resolve", t.to_resolve),
        )

    def metrics(self, people: Sequence[Person], events: int, reopened: int) -> tuple[Metric, ...]:
        t = self.times
        duration = format_duration(t.duration) + (" so far (still open)" if t.ongoing else "")
        diagnostics = [r for r in self.runs if r.kind != "mitigation" and r.outcome == "ran"]
        grades = Counter(r.grade or "ungraded" for r in diagnostics)
        mitigations = [r for r in self.runs if r.kind == "mitigation"]
        gaps = self.update_gaps()
        open_items = sum(1 for i in self.items if i.status != "done")
        return (
            Metric("Duration (detection to resolution)", duration),
            Metric("Severity changes", str(max(0, len(self.history) - 1))),
            Metric(
                "Alerts",
                f"{len(self.alerts)} ({sum(a.count for a in self.alerts)} notifications)",
            ),
            Metric(
                "Diagnostics run",
                f"{len(diagnostics)}"
                + (
                    f" ({', '.join(f'{n} {g}' for g, n in sorted(grades.items()))})"
                    if grades
                    else ""
                ),
            ),
            Metric(
                "Mitigations",
                f"{sum(r.outcome == 'ran' for r in mitigations)} ran, "
                f"{sum(r.outcome == 'refused' for r in mitigations)} refused",
            ),
            Metric(
                "Updates sent",
                f"{len(self.updates)}"
                + (f" ({len(gaps)} late)" if gaps else (" (none late)" if self.updates else "")),
            ),
            Metric("Responders", str(sum(1 for p in people if not p.automation))),
            Metric("Timeline events", str(events)),
            Metric("Action items", f"{len(self.items)} ({open_items} open)"),
            Metric("Reopened", str(reopened)),
        )

    def during(self) -> tuple[CheckItem, ...]:
        """The runbook's "During Incident" checklist, ticked from the record."""
        t, inc = self.times, self.incident
        channel = self.kinds.count("channel") > 0 or inc.channel_name is not None
        notes = self.kinds.count("note", "pinned", *STEP_KINDS)
        monitored = [
            e.at for e in self.kinds.of(EventKind.STATUS) if e.data.get("to") == "monitoring"
        ]
        return (
            CheckItem(
                "Acknowledge alert",
                t.acknowledged is not None,
                f"by {t.acknowledged_by} at {t.acknowledged:%H:%M} UTC"
                if t.acknowledged
                else "never acknowledged",
            ),
            CheckItem(
                "Assess impact and severity",
                bool(inc.impact) and inc.severity_source != "default",
                f"{inc.severity} ({inc.severity_source}); impact "
                + ("recorded" if inc.impact else "not recorded"),
            ),
            CheckItem(
                "Start incident channel/call",
                channel,
                f"#{inc.channel_name}" if inc.channel_name else "no channel on record",
            ),
            CheckItem(
                "Implement immediate mitigation",
                t.mitigated is not None,
                f"mitigated at {t.mitigated:%H:%M} UTC" if t.mitigated else "not mitigated",
            ),
            CheckItem(
                "Communicate status to stakeholders",
                bool(self.updates),
                f"{len(self.updates)} update(s) sent",
            ),
            CheckItem(
                "Document actions taken",
                notes > 0,
                f"{notes} note(s), pin(s) and step run(s) on the timeline",
            ),
            CheckItem(
                "Monitor recovery metrics",
                bool(monitored),
                f"monitoring from {monitored[0]:%H:%M} UTC" if monitored else "never in monitoring",
            ),
        )

    def after(self) -> tuple[CheckItem, ...]:
        """The runbooks' "Post-Incident" checklists; only the record's facts are ticked."""
        t, inc = self.times, self.incident
        firing = [a.name for a in self.alerts if a.status == "firing"]
        open_items = sum(1 for i in self.items if i.status != "done")
        runbooks = sorted({r.runbook for r in self.runs if r.runbook})
        names = sorted({a.name for a in self.alerts})
        return (
            CheckItem(
                "Ensure system stability",
                t.resolved is not None and not firing,
                "still firing: " + ", ".join(firing) if firing else "no alert firing",
            ),
            CheckItem(
                "Document root cause",
                bool(inc.root_cause),
                "recorded at resolution" if inc.root_cause else "not recorded yet",
            ),
            CheckItem("Create incident report", False, "this draft: fill in every ✍️ field"),
            CheckItem(
                "Schedule post-mortem",
                False,
                f"within 48 hours: by {t.resolved + REVIEW_WITHIN:%Y-%m-%d %H:%M} UTC"
                if t.resolved
                else "within 48 hours of resolution",
            ),
            CheckItem(
                "Update runbook with learnings",
                False,
                "runbooks used: " + ", ".join(runbooks) if runbooks else "no runbook step was run",
            ),
            CheckItem(
                "Implement preventive measures",
                bool(self.items) and open_items == 0,
                f"{len(self.items)} action item(s), {open_items} open",
            ),
            CheckItem(
                "Review monitoring and alert thresholds",
                False,
                "alerts: " + ", ".join(names) if names else "no alert fired: add one?",
            ),
            CheckItem(
                "Close incident ticket",
                t.resolved is not None,
                f"resolved at {t.resolved:%H:%M} UTC" if t.resolved else f"still {inc.status}",
            ),
        )


def known_level(scheme: SeverityScheme, name: str) -> SeverityLevel | None:
    """The level ``name`` of ``scheme``, or None."""
    try:
        return scheme.get(name)
    except InvalidSeverity:  # a level the configuration no longer has
        return None


def _step_name(run: StepRun) -> str:
    return f"{run.runbook}/{run.step}" if run.runbook else run.step or run.run_id
