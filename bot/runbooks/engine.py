"""The runbook use cases: match, diagnose, request → approve → confirm a mitigation.

::

    diagnose ──────────────────────────────► step_run (diagnostic, done|failed)
    request ─ allowed? params ok? preview ok? ► step_run (preview) + mitigation row, pending
       │                                  no ► refused row + step_refused, then raise
    approve (two-person steps: an allowed second person, never the requester)
       └─► approved + step_approved
    confirm (an allowed person; approved first when two-person; within pending_ttl)
       └─► running ─► done|failed + step_run
    cancel (the requester or the incident's commander, while pending or approved)
       └─► cancelled + step_cancelled; it can no longer be approved or confirmed

Every run, refusal and approval is a ``step_run`` row and a timeline event, written in one
transaction by ``Incidents.record`` (see :mod:`bot.runbooks.audit`). Writers lock the
incident row first, so two confirmations of one request run it once. Steps themselves run
outside warroom's own transactions; a target that is down, a timeout or a permission error
is a result graded ``error``, never an exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.errors import UserError
from bot.incidents.lifecycle import Change, Incidents
from bot.runbooks import audit
from bot.runbooks.errors import (
    ApprovalRequired,
    InvalidParameter,
    NotAllowed,
    Refused,
    RunbookNotFound,
    RunNotPending,
    SelfApproval,
)
from bot.runbooks.executor import DIAGNOSTIC, MITIGATION, Executor, stored_params
from bot.runbooks.kinds import KINDS, StepKind
from bot.runbooks.model import (
    AlertLike,
    Allowed,
    Mitigation,
    Runbook,
    Step,
    builtin_dir,
    load_runbooks,
)
from bot.runbooks.params import ParamValue, coerce_all, format_duration
from bot.runbooks.results import StepResult, stored_result
from bot.runbooks.settings import RunbookSettings
from bot.store.db import Database
from bot.store.models import Alert, Incident, StepRun


@dataclass(frozen=True, slots=True)
class Pending:
    """A previewed mitigation waiting for its approval and confirmation."""

    run_id: int
    incident: str
    runbook: str
    step: str
    title: str
    params: dict[str, object]
    requested_by: str
    two_person: bool
    approved_by: list[str]
    status: str
    expires_at: datetime
    preview: StepResult | None
    cancelled_by: str | None = None

    @property
    def ready(self) -> bool:
        """Whether a confirmation would run it now."""
        return self.status == "approved" or (self.status == "pending" and not self.two_person)


def load_configured(
    settings: RunbookSettings, kinds: Mapping[str, StepKind] | None = None
) -> list[Runbook]:
    """The built-in runbooks (unless disabled), replaced by yours where the ids are the same."""
    merged: dict[str, Runbook] = {}
    if settings.builtin:
        merged = {rb.id: rb for rb in load_runbooks([builtin_dir()], kinds=kinds)}
    if settings.paths:
        own = load_runbooks(settings.paths, kinds=kinds, targets=settings.targets)
        merged.update({rb.id: rb for rb in own})
    return list(merged.values())


class _Alert:
    """An alert seen with the incident's service as its ``service`` label when it has none."""

    def __init__(self, alert: AlertLike, service: str | None) -> None:
        self.labels = dict(alert.labels)
        if service and "service" not in self.labels:
            self.labels["service"] = service
        self.annotations = alert.annotations
        self.links = alert.links
        self.summary = alert.summary


class Runbooks:
    """The runbook use cases. One instance per process; safe to share."""

    def __init__(
        self,
        db: Database,
        incidents: Incidents,
        *,
        runbooks: Sequence[Runbook],
        settings: RunbookSettings | None = None,
        kinds: Mapping[str, StepKind] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.db = db
        self.incidents = incidents
        self.settings = settings or RunbookSettings()
        self.clock = clock or incidents.clock
        self.executor = Executor(KINDS if kinds is None else kinds, self.settings)
        self._runbooks = {rb.id: rb for rb in runbooks}

    @classmethod
    def load(
        cls,
        db: Database,
        incidents: Incidents,
        settings: RunbookSettings,
        *,
        kinds: Mapping[str, StepKind] | None = None,
    ) -> Runbooks:
        """Built-in and configured runbooks; raises ``ConfigError`` listing every problem."""
        books = load_configured(settings, kinds)
        return cls(db, incidents, runbooks=books, settings=settings, kinds=kinds)

    @property
    def runbooks(self) -> list[Runbook]:
        return list(self._runbooks.values())

    def get(self, runbook: str) -> Runbook:
        try:
            return self._runbooks[runbook]
        except KeyError:
            raise RunbookNotFound(runbook, sorted(self._runbooks)) from None

    # -- matching -----------------------------------------------------------

    def match(self, incident: Incident, alerts: Sequence[AlertLike]) -> list[Runbook]:
        """The runbooks for these alerts, best first (an explicit runbook link beats a name)."""
        seen = [_Alert(a, incident.service) for a in alerts]
        scored = [(max((rb.match.score(a) for a in seen), default=0), rb) for rb in self.runbooks]
        return [rb for score, rb in sorted(scored, key=lambda s: (-s[0], s[1].id)) if score > 0]

    async def matching(self, key: str) -> list[Runbook]:
        """The runbooks for the incident's stored alerts."""
        incident = await self.incidents.get(key)
        async with self.db.transaction(read_only=True) as session:
            query = select(Alert).where(col(Alert.incident_id) == incident.id)
            alerts = list((await session.exec(query)).all())
        return self.match(incident, alerts)

    async def auto_diagnose(self, key: str, *, actor: str = "warroom") -> list[StepResult]:
        """Every diagnostic of every matched runbook that needs no parameter."""
        if not self.settings.auto_diagnose:
            return []
        results: list[StepResult] = []
        for book in await self.matching(key):
            results += await self.diagnose(key, book.id, actor=actor, configured_only=True)
        return results

    # -- diagnostics ----------------------------------------------------------

    async def diagnose(
        self,
        key: str,
        runbook: str,
        step: str | None = None,
        *,
        params: Mapping[str, object] | None = None,
        actor: str,
        configured_only: bool = False,
    ) -> list[StepResult]:
        """Run one diagnostic, or all of the runbook's whose parameters are known, at once.

        ``configured_only`` skips steps whose target is not configured (automatic runs),
        instead of showing them as errors that say what to configure.
        """
        book = self.get(runbook)
        chosen = book.diagnostic(step) if step is not None else None
        given = dict(params or {})
        incident = await self.incidents.get(key)
        try:
            plans = _plans(book, chosen, given)
        except InvalidParameter as error:
            raise await self._refuse(key, actor, book, chosen, DIAGNOSTIC, given, error) from None
        if configured_only:
            plans = [(s, p) for s, p in plans if self.executor.configured(s)]
        if not plans:
            return []
        results = await asyncio.gather(
            *(self.executor.run(book.id, s, p, DIAGNOSTIC, incident) for s, p in plans)
        )
        async with self.db.transaction() as session:
            locked = await self.incidents.lock_key(session, key)
            runs = [
                audit.finished_run(_id(locked), r, actor=actor, now=self.clock.now())
                for r in results
            ]
            session.add_all(runs)
            await session.flush()
            changes = [
                *self.incidents.implied_acknowledgement(locked, actor, "ran a diagnostic"),
                *(audit.event("step_run", run, r) for run, r in zip(runs, results, strict=True)),
            ]
            await self.incidents.record(session, locked, actor, changes)
        return [replace(r, run_id=run.id) for run, r in zip(runs, results, strict=True)]

    # -- mitigations ----------------------------------------------------------

    async def request(
        self,
        key: str,
        runbook: str,
        step: str,
        *,
        params: Mapping[str, object] | None = None,
        actor: str,
        groups: Collection[str] = (),
        roles: Collection[str] = (),
    ) -> Pending:
        """Check the person and the parameters, run the preview, store the pending request."""
        book = self.get(runbook)
        mitigation = book.mitigation(step)
        given = dict(params or {})
        incident = await self.incidents.get(key)
        allowed = self._allowed(book, mitigation)
        if not allowed.admits(actor=actor, roles=_roles(incident, actor, roles), groups=groups):
            refused = NotAllowed(
                f"You may not run {book.id}/{mitigation.id}: it is allowed to {allowed.describe()}."
            )
            raise await self._refuse(key, actor, book, mitigation, MITIGATION, given, refused)
        try:
            typed = _coerce(book, mitigation, given)
        except InvalidParameter as invalid:
            raise await self._refuse(
                key, actor, book, mitigation, MITIGATION, given, invalid
            ) from None
        preview: StepResult | None = None
        if mitigation.preview is not None:
            shown = book.diagnostic(mitigation.preview)
            mine = coerce_all(shown.params, {n: v for n, v in typed.items() if n in shown.params})
            preview = await self.executor.run(book.id, shown, mine, DIAGNOSTIC, incident)
        failed = preview is not None and preview.error is not None
        async with self.db.transaction() as session:
            locked = await self.incidents.lock_key(session, key)
            now = self.clock.now()
            changes: list[Change] = self.incidents.implied_acknowledgement(
                locked, actor, "requested a mitigation"
            )
            run = audit.new_run(
                _id(locked),
                book.id,
                mitigation,
                MITIGATION,
                actor=actor,
                params=stored_params(typed),
                status="refused" if failed else "pending",
                now=now,
            )
            if preview is not None:
                shown_run = audit.finished_run(_id(locked), preview, actor=actor, now=now)
                session.add(shown_run)
                await session.flush()
                changes.append(audit.event("step_run", shown_run, preview))
                preview = replace(preview, run_id=shown_run.id)
                run.output = {"preview_run_id": shown_run.id}
                run.summary = (
                    f"refused: the preview failed ({preview.error})"
                    if failed
                    else f"preview: {preview.summary}"
                )
            session.add(run)
            await session.flush()
            changes.append(
                audit.event("step_refused" if failed else "step_requested", run, preview)
            )
            await self.incidents.record(session, locked, actor, changes)
        if failed:
            raise Refused(f"{run.summary}. Nothing was requested; fix the target and ask again.")
        return self._pending(run, locked.key, mitigation, preview)

    async def approve(
        self,
        run_id: int,
        *,
        actor: str,
        groups: Collection[str] = (),
        roles: Collection[str] = (),
    ) -> Pending:
        """The second person's approval of a two-person mitigation."""
        async with self.db.transaction() as session:
            incident, run, book, mitigation, refusal = await self._load_checked(
                session, run_id, "approve", actor=actor, groups=groups, roles=roles
            )
            if refusal is None:
                run.approved_by = [*run.approved_by, actor]
                run.status = "approved"
                session.add(run)
                implied = self.incidents.implied_acknowledgement(
                    incident, actor, "approved a mitigation"
                )
                await self.incidents.record(
                    session, incident, actor, [*implied, audit.event("step_approved", run)]
                )
            preview = await self._preview(session, run, book)
        if refusal is not None:
            raise refusal
        return self._pending(run, incident.key, mitigation, preview)

    async def confirm(
        self,
        run_id: int,
        *,
        actor: str,
        groups: Collection[str] = (),
        roles: Collection[str] = (),
    ) -> StepResult:
        """Run a previewed (and, for two-person steps, approved) mitigation."""
        async with self.db.transaction() as session:
            incident, run, book, mitigation, refusal = await self._load_checked(
                session, run_id, "confirm", actor=actor, groups=groups, roles=roles
            )
            if refusal is None:
                run.status = "running"
                run.confirmed_by = actor
                run.started_at = self.clock.now()
                session.add(run)
        if refusal is not None:
            raise refusal
        context = {
            "requested_by": run.requested_by,
            "approved_by": list(run.approved_by),
            "confirmed_by": actor,
        }
        try:
            typed = coerce_all(mitigation.params, dict(run.params))
        except ValueError as error:
            problem = f"the stored parameters are no longer valid: {error}"
            result = self.executor.failed(book.id, mitigation, MITIGATION, run.params, problem)
        else:
            result = await self.executor.run(
                book.id, mitigation, typed, MITIGATION, incident, run_id=run_id, context=context
            )
        async with self.db.transaction() as session:
            locked = await self.incidents.lock(session, run.incident_id)
            stored = await session.get(StepRun, run_id)
            assert stored is not None
            audit.finish(stored, result, self.clock.now())
            session.add(stored)
            implied = self.incidents.implied_acknowledgement(locked, actor, "ran a mitigation")
            await self.incidents.record(
                session, locked, actor, [*implied, audit.event("step_run", stored, result)]
            )
        return replace(result, run_id=run_id)

    async def cancel(self, run_id: int, *, actor: str) -> Pending:
        """Withdraw a pending (or approved, not yet confirmed) mitigation request.

        Only the person who requested it or the incident's commander may; anyone else is
        refused, and the refusal is on the timeline like any other.
        """
        async with self.db.transaction() as session:
            incident, run, book, mitigation = await self._load_run(session, run_id)
            refusal: Refused | None = await self._expired(session, incident, run, actor)
            commander = incident.roles.get("commander")
            if refusal is None and run.status not in ("pending", "approved"):
                refusal = RunNotPending(
                    f"Run #{run.id} is {run.status}: there is nothing to cancel."
                )
            elif refusal is None and actor not in (run.requested_by, commander):
                who = f"the requester ({run.requested_by})"
                who += f" or the incident commander ({commander})" if commander else ""
                refusal = NotAllowed(f"Only {who} can cancel run #{run.id}.")
                refused = audit.refusal_of(
                    run, actor=actor, reason=f"cancel refused: {refusal}", now=self.clock.now()
                )
                session.add(refused)
                await session.flush()
                await self.incidents.record(
                    session, incident, actor, [audit.event("step_refused", refused)]
                )
            if refusal is None:
                run.status = "cancelled"
                run.finished_at = self.clock.now()
                run.summary = f"cancelled by {actor}"
                run.output = {**run.output, "cancelled_by": actor}
                session.add(run)
                await self.incidents.record(
                    session, incident, actor, [audit.event("step_cancelled", run)]
                )
            preview = await self._preview(session, run, book)
        if refusal is not None:
            raise refusal
        return self._pending(run, incident.key, mitigation, preview)

    # -- reads ----------------------------------------------------------------

    async def runs(self, key: str) -> list[StepRun]:
        """Every step run of the incident, oldest first."""
        incident = await self.incidents.get(key)
        async with self.db.transaction(read_only=True) as session:
            query = select(StepRun).where(col(StepRun.incident_id) == incident.id)
            return list((await session.exec(query.order_by(col(StepRun.id)))).all())

    async def pending(self, run_id: int) -> Pending:
        """A mitigation request as it stands (to render it again)."""
        async with self.db.transaction(read_only=True) as session:
            incident, run, book, mitigation = await self._load_run(session, run_id, lock=False)
            preview = await self._preview(session, run, book)
        return self._pending(run, incident.key, mitigation, preview)

    # -- internals ------------------------------------------------------------

    async def _load_checked(
        self,
        session: AsyncSession,
        run_id: int,
        action: str,
        *,
        actor: str,
        groups: Collection[str],
        roles: Collection[str],
    ) -> tuple[Incident, StepRun, Runbook, Mitigation, UserError | None]:
        """The locked run and whether ``actor`` may ``action`` it now (a refusal is recorded)."""
        incident, run, book, mitigation = await self._load_run(session, run_id)
        refusal = await self._check(
            session,
            incident,
            run,
            book,
            mitigation,
            action,
            actor=actor,
            groups=groups,
            roles=roles,
        )
        return incident, run, book, mitigation, refusal

    def _allowed(self, book: Runbook, mitigation: Mitigation) -> Allowed:
        return mitigation.allowed.merged(self.settings.grant_for(book.id, mitigation.id))

    async def _check(
        self,
        session: AsyncSession,
        incident: Incident,
        run: StepRun,
        book: Runbook,
        mitigation: Mitigation,
        action: str,
        *,
        actor: str,
        groups: Collection[str],
        roles: Collection[str],
    ) -> UserError | None:
        """Why ``actor`` may not approve / confirm ``run`` now (recorded), or None."""
        now = self.clock.now()
        expired = await self._expired(session, incident, run, actor)
        if expired is not None:
            return expired
        name = f"{book.id}/{mitigation.id}"
        allowed = self._allowed(book, mitigation)
        admitted = allowed.admits(actor=actor, roles=_roles(incident, actor, roles), groups=groups)
        verb = "approve" if action == "approve" else "run"
        refusal: Refused | None = None
        if run.status not in ("pending", "approved"):
            refusal = RunNotPending(f"Run #{run.id} is {run.status}: request it again to run it.")
        elif action == "approve" and not mitigation.two_person:
            return UserError(f"{name} needs no second person: confirm run #{run.id}.")
        elif action == "approve" and run.status == "approved":
            refusal = RunNotPending(
                f"Run #{run.id} is already approved by {', '.join(run.approved_by)}: confirm it."
            )
        elif action == "approve" and actor == run.requested_by:
            refusal = SelfApproval(f"You requested run #{run.id}: a second person must approve it.")
        elif not admitted:
            refusal = NotAllowed(
                f"You may not {verb} {name}: it is allowed to {allowed.describe()}."
            )
        elif action == "confirm" and mitigation.two_person and run.status != "approved":
            refusal = ApprovalRequired(
                f"Run #{run.id} ({name}) needs a second person's "
                f"approval first (not {run.requested_by})."
            )
        if refusal is not None:
            refused = audit.refusal_of(run, actor=actor, reason=str(refusal), now=now)
            session.add(refused)
            await session.flush()
            await self.incidents.record(
                session, incident, actor, [audit.event("step_refused", refused)]
            )
        return refusal

    async def _expired(
        self, session: AsyncSession, incident: Incident, run: StepRun, actor: str
    ) -> RunNotPending | None:
        """Mark a request past ``pending_ttl`` expired (recorded) and say so; None if it is not."""
        ttl = self.settings.pending_ttl
        if run.status not in ("pending", "approved") or self.clock.now() <= run.requested_at + ttl:
            return None
        run.status = "refused"
        run.summary = f"expired: not confirmed within {format_duration(ttl)}"
        session.add(run)
        await self.incidents.record(session, incident, actor, [audit.event("step_refused", run)])
        return RunNotPending(
            f"Run #{run.id} expired (its preview is stale): request it again to see a fresh one."
        )

    async def _refuse(
        self,
        key: str,
        actor: str,
        book: Runbook,
        step: Step | None,
        mode: str,
        given: dict[str, object],
        error: UserError,
    ) -> UserError:
        """Record a refused request (not allowed, bad parameters); return the error to raise."""
        redactor = self.executor.redactor()
        shown: dict[str, object] = {
            str(k)[:40]: redactor.text(str(v))[:200] for k, v in given.items()
        }
        async with self.db.transaction() as session:
            incident = await self.incidents.lock_key(session, key)
            run = audit.refused_request(
                _id(incident),
                book.id,
                step,
                mode,
                actor=actor,
                params=shown,
                reason=redactor.text(str(error)),
                now=self.clock.now(),
            )
            session.add(run)
            await session.flush()
            await self.incidents.record(
                session, incident, actor, [audit.event("step_refused", run)]
            )
        return error

    async def _load_run(
        self, session: AsyncSession, run_id: int, *, lock: bool = True
    ) -> tuple[Incident, StepRun, Runbook, Mitigation]:
        """The request, its incident (locked first, so writers of one incident queue), its step."""
        found = await session.get(StepRun, run_id)
        if found is None or found.kind != MITIGATION:
            raise UserError(f"No mitigation request #{run_id}.")
        if lock:
            incident = await self.incidents.lock(session, found.incident_id)
            query = select(StepRun).where(col(StepRun.id) == run_id).with_for_update()
            run = (await session.exec(query.execution_options(populate_existing=True))).one()
        else:
            run, loaded = found, await session.get(Incident, found.incident_id)
            assert loaded is not None
            incident = loaded
        book = self.get(run.runbook)
        return incident, run, book, book.mitigation(run.step)

    async def _preview(
        self, session: AsyncSession, run: StepRun, book: Runbook
    ) -> StepResult | None:
        """The stored preview of a request, as a result again."""
        preview_id = run.output.get("preview_run_id")
        row = await session.get(StepRun, preview_id) if isinstance(preview_id, int) else None
        return None if row is None else stored_result(row, book.diagnostic(row.step).title)

    def _pending(
        self, run: StepRun, key: str, mitigation: Mitigation, preview: StepResult | None
    ) -> Pending:
        return Pending(
            run_id=_id(run),
            incident=key,
            runbook=run.runbook,
            step=run.step,
            title=mitigation.title,
            params=dict(run.params),
            requested_by=run.requested_by,
            two_person=mitigation.two_person,
            approved_by=list(run.approved_by),
            status=run.status,
            expires_at=run.requested_at + self.settings.pending_ttl,
            preview=preview,
            cancelled_by=run.output.get("cancelled_by") if run.status == "cancelled" else None,
        )


def _plans(
    book: Runbook, chosen: Step | None, given: dict[str, object]
) -> list[tuple[Step, dict[str, ParamValue]]]:
    """The steps to run with their typed parameters; ``InvalidParameter`` otherwise."""
    if chosen is not None:
        return [(chosen, _coerce(book, chosen, given))]
    declared = {n for s in book.diagnostics for n in s.params}
    unknown = sorted(set(given) - declared)
    if unknown:
        raise InvalidParameter(
            f"{book.id} has no diagnostic taking {', '.join(unknown)} "
            f"(they take: {', '.join(sorted(declared)) or 'nothing'})"
        )
    plans = []
    for step in book.diagnostics:
        mine = {n: v for n, v in given.items() if n in step.params}
        if any(p.required and n not in mine for n, p in step.params.items()):
            continue  # needs a value nobody gave: it runs on its own, with the value
        plans.append((step, _coerce(book, step, mine)))
    return plans


def _coerce(book: Runbook, step: Step, given: dict[str, object]) -> dict[str, ParamValue]:
    try:
        return coerce_all(step.params, given)
    except ValueError as error:
        raise InvalidParameter(f"{book.id}/{step.id}: {error}") from None


def _roles(incident: Incident, actor: str, extra: Collection[str]) -> set[str]:
    """The incident roles ``actor`` holds, and any the caller vouches for (on-call…)."""
    return {role for role, user in incident.roles.items() if user == actor} | set(extra)


def _id(row: Incident | StepRun) -> int:
    assert row.id is not None
    return row.id
