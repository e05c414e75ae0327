"""Idempotent writes: a client-generated request id is claimed in the same transaction as the write.

A retry with the same id returns the first answer (even if the first call's client saw an error after the
commit); the same id with different parameters is refused, never applied twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy import (
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    bindparam,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from nhm_platform.errors import Aborted, FailedPrecondition, InvalidArgument
from nhm_platform.statements import Compiled, dialect_of

MAX_REQUEST_ID_LENGTH = 128


def fingerprint(request: Message, exclude: tuple[str, ...] = ("request_id",)) -> str:
    """Digest of a request's content, ignoring the id fields themselves."""
    copy = type(request)()
    copy.CopyFrom(request)
    for name in exclude:
        copy.ClearField(name)
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


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

    def claim(self, session: Session, *, tenant_id: str, request_id: str, method: str, request_fingerprint: str,
              now: datetime, field: str = "request_id") -> bytes | None:
        """None if this request id is new (it is now claimed); else the stored response of the first call."""
        if len(request_id) > MAX_REQUEST_ID_LENGTH or not request_id.isprintable():
            raise InvalidArgument.for_field(field, f"at most {MAX_REQUEST_ID_LENGTH} printable characters")
        dialect = dialect_of(session)
        key = {"k_tenant": tenant_id, "k_request": request_id}
        inserted = self._claims["postgresql" if dialect == "postgresql" else "sqlite"].first(session, {
            **key, "k_method": method, "k_fingerprint": request_fingerprint, "k_now": now})
        if inserted is not None:
            return None
        row = self._stored.first(session, key)
        if row is None:  # the transaction that held the id rolled back between the two statements
            raise Aborted(f"{field} {request_id!r} was released by a call that failed; retry", reason="CONFLICT")
        if row.method != method or row.fingerprint != request_fingerprint:
            raise FailedPrecondition(
                f"{field} {request_id!r} was already used for a different request; use a new id for a new request",
                reason="REQUEST_ID_REUSED")
        if row.response is None:
            raise FailedPrecondition(f"{field} {request_id!r} is still being processed", reason="REQUEST_IN_PROGRESS")
        return bytes(row.response)

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
