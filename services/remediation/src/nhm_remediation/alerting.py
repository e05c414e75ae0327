"""Alerts: who wants which, what the message says, how it is signed, and when a failed delivery is retried.

A webhook receives ``POST`` with a JSON body; ``X-Nhm-Signature: sha256=<hex>`` is HMAC-SHA256 of the exact body
bytes with the subscription's signing secret, and ``Idempotency-Key`` / ``X-Nhm-Alert-Id`` carry the alert's id,
the same on every retry, so a receiver that saw it already can ignore it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from nhm_platform.errors import FieldViolation
from nhm_platform.ids import new_id
from nhm_remediation.domain import AlertChannel, AlertKind, AlertRequest, Case

SIGNATURE_HEADER = "X-Nhm-Signature"
ALERT_ID_HEADER = "X-Nhm-Alert-Id"
_EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")
MAX_TARGET_LENGTH = 2000
MAX_CAMPAIGN_FILTERS = 100


@dataclass(frozen=True)
class Subscription:
    id: str
    tenant_id: str
    channel: AlertChannel
    target: str
    kinds: tuple[AlertKind, ...]
    campaign_ids: tuple[str, ...]
    signing_secret: str
    create_time: datetime

    def wants(self, kind: AlertKind, campaign_ids: Sequence[str]) -> bool:
        """Empty filters take everything; a campaign filter takes alerts about one of those campaigns."""
        if self.kinds and kind not in self.kinds:
            return False
        return not self.campaign_ids or bool(set(self.campaign_ids) & set(campaign_ids))


@dataclass(frozen=True)
class Alert:
    id: str
    tenant_id: str
    kind: AlertKind
    case_id: str
    phone_number: str
    campaign_ids: tuple[str, ...]
    summary: str
    body: str
    create_time: datetime


def build_alert(tenant_id: str, request: AlertRequest, now: datetime, *, case: Case | None = None,
                phone_number: str = "", campaign_ids: Sequence[str] = ()) -> Alert:
    alert_id = new_id("alr")
    phone = case.phone_number if case is not None else phone_number
    campaigns = sorted(set(campaign_ids) | {str(request.details["campaign_id"])}
                       if "campaign_id" in request.details else set(campaign_ids))
    payload: dict[str, object] = {
        "alert_id": alert_id,
        "kind": request.kind.value,
        "tenant_id": tenant_id,
        "time": now.isoformat(),
        "summary": request.summary,
        "phone_number": phone,
        "campaign_ids": campaigns,
    }
    if case is not None:
        payload["case"] = {"id": case.id, "kind": case.kind.value, "state": case.state.value,
                           "stage": case.stage.value, "cycle": case.cycle, "recommendation": case.recommendation}
    if request.details:
        payload["details"] = request.details
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return Alert(alert_id, tenant_id, request.kind, case.id if case else "", phone, tuple(campaigns),
                 request.summary, body, now)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, body), signature)


def new_signing_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def backoff(attempts: int, initial: timedelta, maximum: timedelta) -> timedelta:
    """Delay after the attempts-th failure: initial, doubling each time, capped."""
    return min(initial * (2 ** max(attempts - 1, 0)), maximum)


def email_subject(alert: Alert) -> str:
    return f"[nhm] {alert.kind.value.replace('_', ' ').title()}: {alert.summary}"[:200]


def check_target(channel: AlertChannel, target: str, *, allow_http: bool, field: str) -> list[FieldViolation]:
    if not target:
        return [FieldViolation(field, "required: a webhook URL or an e-mail address")]
    if len(target) > MAX_TARGET_LENGTH:
        return [FieldViolation(field, f"at most {MAX_TARGET_LENGTH} characters")]
    if channel is AlertChannel.WEBHOOK:
        parts = urlsplit(target)
        schemes = ("https", "http") if allow_http else ("https",)
        if parts.scheme not in schemes or not parts.hostname:
            return [FieldViolation(field, f"a webhook URL must be {' or '.join(schemes)}://host/...")]
        if parts.username or parts.password:
            return [FieldViolation(field, "no credentials in the URL; the signature authenticates each alert")]
    elif not _EMAIL.fullmatch(target):
        return [FieldViolation(field, "an e-mail address such as ops@example.com")]
    return []
