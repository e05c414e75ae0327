"""Reading and changing a tenant's scoring policy; a change rescores every number of the tenant."""

from __future__ import annotations

from collections.abc import Mapping

from nhm.scoring.v1 import scoring_pb2
from nhm_platform.audit import UPDATED, Actor, AuditSubject, fields_of
from nhm_platform.auth import Principal
from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.errors import InvalidArgument
from nhm_scoring import number_replica, policy_store
from nhm_scoring.housekeeping import Housekeeper
from nhm_scoring.messages import policy_message
from nhm_scoring.models import audit, idempotency
from nhm_scoring.policy import PolicyViolations, ScoringPolicy, apply_update, effective

METHOD = "UpdateScoringPolicy"


class Policies:
    def __init__(self, db: Database, clock: Clock, housekeeper: Housekeeper) -> None:
        self._db, self._clock, self._housekeeper = db, clock, housekeeper

    def get(self, tenant_id: str) -> ScoringPolicy:
        with self._db.read() as session:
            return policy_store.load(session, tenant_id)

    def update(self, principal: Principal, tenant_id: str, changes: Mapping[str, object], request_id: str,
               fingerprint: str) -> scoring_pb2.UpdateScoringPolicyResponse:
        """Save the change with its audit event, then rescore the tenant's numbers in chunks (a retry with the
        same request id gets the first answer and changes nothing)."""
        with self._db.transaction() as session:
            now = self._clock.now()
            if request_id:
                stored = idempotency.claim(session, tenant_id=tenant_id, request_id=request_id, method=METHOD,
                                           request_fingerprint=fingerprint, now=now)
                if stored is not None:
                    return scoring_pb2.UpdateScoringPolicyResponse.FromString(stored)
            stored = policy_store.load_overrides(session, tenant_id)
            try:
                overrides, policy = apply_update(stored, changes)
            except PolicyViolations as exc:
                raise InvalidArgument.for_fields(exc.violations, reason="INVALID_POLICY") from None
            policy_store.save(session, tenant_id, overrides, now)
            before = _audit_subject(tenant_id, effective(stored))
            audit.record(session, Actor.of(principal, request_id),
                         [_audit_subject(tenant_id, policy).entry(UPDATED, before=before)], now)
            numbers = len(number_replica.all_phones(session, tenant_id))
            response = scoring_pb2.UpdateScoringPolicyResponse(policy=policy_message(policy), rescored=numbers)
            if request_id:
                idempotency.complete(session, tenant_id=tenant_id, request_id=request_id, response=response)
        response.rescored = self._housekeeper.rescore_tenant(tenant_id)
        return response


def _audit_subject(tenant_id: str, policy: ScoringPolicy) -> AuditSubject:
    """The effective policy as the audit trail compares it (a change lists the effective fields it changed)."""
    return AuditSubject(tenant_id, "scoring_policy", "scoring_policy", fields_of(policy_message(policy)))
