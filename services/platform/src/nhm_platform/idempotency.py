"""Idempotent writes: a client-generated request id is claimed in the same transaction as the write.

A retry with the same id returns the first answer (even if the first call's client saw an error after the
commit); the same id with different parameters is refused, never applied twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import (
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    null,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from nhm_platform.errors import Aborted, FailedPrecondition, FieldViolation, InvalidArgument
from nhm_platform.statements import Compiled, dialect_of

MAX_REQUEST_ID_LENGTH = 128


def fingerprint(request: Message, exclude: tuple[str, ...] = ("request_id",)) -> str:
    """Digest of a request's content, ignoring the id fields themselves."""
    copy = type(request)()
    copy.CopyFrom(request)
    for name in exclude:
        copy.ClearField(name)
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def request_id_violation(request_id: str, field: str = "request_id") -> FieldViolation | None:
    """What is wrong with a request id as a key, if anything."""
    if len(request_id) > MAX_REQUEST_ID_LENGTH or not request_id.isprintable():
        return FieldViolation(field, f"at most {MAX_REQUEST_ID_LENGTH} printable characters")
    return None


def check_request_id(request_id: str, field: str = "request_id") -> None:
    violation = request_id_violation(request_id, field)
    if violation is not None:
        raise InvalidArgument.for_fields([violation])


@dataclass(frozen=True)
class Claim:
    """What claiming a request id found: nothing (it is claimed now), the first call's stored answer, or why
    the id cannot be used (refusal)."""

    stored: bytes | None = None
    refusal: Exception | None = None

    def result(self) -> bytes | None:
        """None if the id is claimed now; else the stored answer, or the refusal raised."""
        if self.refusal is not None:
            raise self.refusal
        return self.stored


def _found(row: Any, request_id: str, method: str, request_fingerprint: str, field: str) -> Claim:
    """What a claim found already there (row: its method, fingerprint and response; None if gone since)."""
    if row is None:  # the transaction that held the id rolled back between the two statements
        return Claim(refusal=Aborted(f"{field} {request_id!r} was released by a call that failed; retry",
                                     reason="CONFLICT"))
    if row.method != method or row.fingerprint != request_fingerprint:
        return Claim(refusal=FailedPrecondition(
            f"{field} {request_id!r} was already used for a different request; use a new id for a new request",
            reason="REQUEST_ID_REUSED"))
    if row.response is None:
        return Claim(refusal=FailedPrecondition(f"{field} {request_id!r} is still being processed",
                                                reason="REQUEST_IN_PROGRESS"))
    return Claim(stored=bytes(row.response))


class IdempotencyStore:
    def __init__(self, metadata: MetaData, name: str = "idempotency_keys") -> None:
        self.table = Table(
            name,
            metadata,
            Column("tenant_id", String(64), nullable=False),
            Column("request_id", String(MAX_REQUEST_ID_LENGTH), nullable=False),
            Column("method", String(64), nullable=False),
            Column("fingerprint", String(64), nullable=False),
            Column("response", LargeBinary, nullable=True),
            Column("create_time", DateTime(timezone=True), nullable=False),
            PrimaryKeyConstraint("tenant_id", "request_id"),
        )

        # Statements built once with bound parameters (services claim on every write; building them per call
        # cost more than running them).
        t = self.table.c
        self._claims = {}
        for dialect, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert)):
            self._claims[dialect] = Compiled(
                insert(self.table).values(tenant_id=bindparam("k_tenant"), request_id=bindparam("k_request"),
                                          method=bindparam("k_method"), fingerprint=bindparam("k_fingerprint"),
                                          response=None, create_time=bindparam("k_now"))
                .on_conflict_do_nothing(index_elements=["tenant_id", "request_id"])
                .returning(t.request_id), prepared=True)
        self._stored = Compiled(select(t.method, t.fingerprint, t.response).where(
            t.tenant_id == bindparam("k_tenant"), t.request_id == bindparam("k_request")), prepared=True)
        self.completion = update(self.table).where(
            t.tenant_id == bindparam("k_tenant"), t.request_id == bindparam("k_request"),
        ).values(response=bindparam("k_response"))
        self._complete = Compiled(self.completion, prepared=True)
        requests = func.unnest(bindparam("k_requests", type_=postgresql.ARRAY(String)),
                               bindparam("k_fingerprints", type_=postgresql.ARRAY(String))
                               ).table_valued("request_id", "fingerprint").render_derived()
        claim_all = postgresql.insert(self.table).from_select(
            ["tenant_id", "request_id", "method", "fingerprint", "response", "create_time"],
            select(bindparam("k_tenant", type_=String), requests.c.request_id, bindparam("k_method", type_=String),
                   requests.c.fingerprint, null(), bindparam("k_now", type_=DateTime(timezone=True))))
        self._pg_claim_all = Compiled(claim_all.on_conflict_do_nothing(index_elements=["tenant_id", "request_id"])
                                      .returning(t.request_id), prepared=True)
        self._pg_stored_all = Compiled(select(t.request_id, t.method, t.fingerprint, t.response).where(
            t.tenant_id == bindparam("k_tenant"),
            t.request_id == any_(bindparam("k_requests", type_=postgresql.ARRAY(String)))), prepared=True)
        self._release = Compiled(delete(self.table).where(
            t.tenant_id == bindparam("k_tenant"), t.request_id == bindparam("k_request"), t.response.is_(None)))

    def claim(self, session: Session, *, tenant_id: str, request_id: str, method: str, request_fingerprint: str,
              now: datetime, field: str = "request_id") -> bytes | None:
        """None if this request id is new (it is now claimed); else the stored response of the first call."""
        check_request_id(request_id, field)
        claimed, stored = self._claim_one(session, dialect_of(session), tenant_id, request_id, method,
                                          request_fingerprint, now)
        if claimed:
            return None
        return _found(stored, request_id, method, request_fingerprint, field).result()

    def _claim_one(self, session: Session, dialect: str, tenant_id: str, request_id: str, method: str,
                   request_fingerprint: str, now: datetime) -> tuple[bool, Any]:
        """(True, None) if the id is claimed now; else (False, the stored row of its first call)."""
        key = {"k_tenant": tenant_id, "k_request": request_id}
        if self._claims["postgresql" if dialect == "postgresql" else "sqlite"].first(session, {
                **key, "k_method": method, "k_fingerprint": request_fingerprint, "k_now": now}) is not None:
            return True, None
        return False, self._stored.first(session, key)

    def claim_all(self, session: Session, *, tenant_id: str, method: str, requests: Sequence[tuple[str, str]],
                  now: datetime, field: str = "request_id") -> dict[tuple[str, str], Claim]:
        """claim() for many requests at once, each (request id, request fingerprint) already checked with
        check_request_id: what each found. An id claimed now is claimed for its first request, and a later one
        with the same id finds the same claim (its caller serves the first one first); an id there before is
        judged by each request's own fingerprint. Two statements on PostgreSQL (the second only if some id was
        there before); on SQLite two an id."""
        first: dict[str, str] = {}  # each id's first request's fingerprint
        for request_id, request_fingerprint in requests:
            first.setdefault(request_id, request_fingerprint)
        if dialect_of(session) == "postgresql":
            ids = sorted(first)
            claimed = {row.request_id for row in self._pg_claim_all.rows(session, {
                "k_tenant": tenant_id, "k_requests": ids, "k_fingerprints": [first[i] for i in ids],
                "k_method": method, "k_now": now})}
            there = [request_id for request_id in ids if request_id not in claimed]
            rows = {row.request_id: row for row in self._pg_stored_all.rows(
                session, {"k_tenant": tenant_id, "k_requests": there})} if there else {}
        else:
            claimed, rows = set(), {}
            for request_id, request_fingerprint in first.items():
                is_new, rows[request_id] = self._claim_one(session, "sqlite", tenant_id, request_id, method,
                                                           request_fingerprint, now)
                if is_new:
                    claimed.add(request_id)
        return {(request_id, request_fingerprint):
                Claim() if request_id in claimed else
                _found(rows.get(request_id), request_id, method, request_fingerprint, field)
                for request_id, request_fingerprint in requests}

    def release_all(self, session: Session, tenant_id: str, request_ids: Collection[str]) -> None:
        """Give up claims made in this transaction whose calls failed (their answers were never stored), for
        callers that cannot roll a failed call back alone."""
        if request_ids:
            self._release.execute_many(session, [{"k_tenant": tenant_id, "k_request": request_id}
                                                 for request_id in sorted(request_ids)])

    def complete(self, session: Session, *, tenant_id: str, request_id: str, response: Message) -> None:
        self._complete.execute(session, self.completion_values(tenant_id, request_id, response))

    def complete_all(self, session: Session, answers: Sequence[tuple[str, str, Message]]) -> None:
        """Store the answers of claimed ids, (tenant id, request id, response) each, in one driver call."""
        self._complete.execute_many(session, [self.completion_values(*answer) for answer in answers])

    @staticmethod
    def completion_values(tenant_id: str, request_id: str, response: Message) -> dict[str, object]:
        """The parameters of `completion`, the statement that stores a claimed id's answer: a caller whose own
        write is one statement may run it inside that one (a common table expression), a round trip less."""
        return {"k_tenant": tenant_id, "k_request": request_id, "k_response": response.SerializeToString()}
