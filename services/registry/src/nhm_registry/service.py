"""The registry's use cases: every rule about who may do what to which number, campaign, tenant or key.

Each write runs in a UnitOfWork the caller opens with :meth:`Registry.write` (so the request id claim, the
change and its feed entries share one transaction); reads open their own.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask

from nhm_platform.audit import CREATED, DELETED, UPDATED, Actor, FieldChange
from nhm_platform.auth import Principal, Role, generate_key, hash_key
from nhm_platform.batch_get import BatchResult, checked_phone_numbers, in_request_order
from nhm_platform.clock import Clock
from nhm_platform.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from nhm_platform.feed import ChangeLog, ChangeRecord, Heartbeat, SnapshotItem
from nhm_platform.fieldmask import checked_paths
from nhm_platform.ids import new_id
from nhm_platform.pagination import decode_page_token, encode_page_token, filter_fingerprint, page_size
from nhm_platform.row_scope import platform_rows
from nhm_registry import lifecycle, policy, validation
from nhm_registry.commands import (
    CampaignInput,
    NumberFilter,
    NumberInput,
    NumberQuery,
    Page,
    TenantInput,
    TransitionInput,
    Update,
)
from nhm_registry.domain import (
    API_KEY,
    ApiKey,
    ApiKeyRole,
    Assignment,
    Attestation,
    BusinessProfile,
    CallingPolicy,
    Campaign,
    ChangeKind,
    LifecycleState,
    Number,
    Tenant,
    Transition,
    WarmupPlan,
    new_etag,
    resource_type,
)
from nhm_registry.repository import Lock, Repository, encode_number_key
from nhm_registry.settings import RegistrySettings
from nhm_registry.unit_of_work import RequestKey, Transactions, UnitOfWork
from nhm_registry.validation import MAX_REASON, MAX_TEXT, Violations, enum_value, text

NUMBER_MUTABLE = ("display_name", "provider", "attestation", "registrations", "inbound_enabled",
                  "inbound_required_until", "labels", "warmup_plan")
CAMPAIGN_MUTABLE = ("name", "description", "policy")
TENANT_MUTABLE = ("display_name", "business_profile")
PROFILE_FIELDS = tuple(f.name for f in dataclasses.fields(BusinessProfile))
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_PREFIX = re.compile(r"\+[0-9]{1,15}")
_AREA_CODE = re.compile(r"[0-9]{1,8}")
_PLATFORM_SCOPE = "_platform"  # request ids of admin and service keys acting for no tenant
SYSTEM = Actor.system("system:registry")
# Audit actions besides created, updated and deleted.
TRANSITIONED, REVOKED, NUMBERS_ASSIGNED, NUMBERS_UNASSIGNED = ("transitioned", "revoked", "numbers_assigned",
                                                               "numbers_unassigned")


class Registry:
    def __init__(self, transactions: Transactions, feed: ChangeLog, clock: Clock,
                 settings: RegistrySettings) -> None:
        self._tx = transactions
        self._feed = feed
        self._clock = clock
        self._settings = settings
        caps = tuple(int(c) for c in settings.warmup_daily_caps.split(",") if c.strip())
        self._lifecycle = lifecycle.LifecyclePolicy(
            default_plan=WarmupPlan(caps, timedelta(seconds=settings.warmup_step)),
            max_plan_steps=settings.warmup_max_steps, max_rest=timedelta(seconds=settings.max_rest))
        self._policy_defaults = policy.defaults(settings)
        self._policy_limits = policy.limits(settings)

    # --- transactions -----------------------------------------------------------------------------------

    def write(self, principal: Principal, key: RequestKey | None) -> Any:
        """A write transaction for principal (refused for read-only keys) claiming key if given."""
        principal.require_write()
        actor = Actor.of(principal, key.request_id if key is not None else "")
        return self._tx.write(principal.tenant_id or _PLATFORM_SCOPE, key, actor)

    def _acting_tenant(self, repo: Repository, principal: Principal, requested: str = "",
                       field: str = "x-nhm-tenant-id") -> str:
        """The caller's tenant; admin and service keys name it (in the request or the call's metadata)."""
        tenant_id = principal.tenant_for(requested, field)
        if principal.is_platform and repo.get_tenant(tenant_id) is None:
            raise NotFound(f"tenant {tenant_id!r} not found")
        return tenant_id

    # --- numbers ----------------------------------------------------------------------------------------

    def create_numbers(self, uow: UnitOfWork, principal: Principal, inputs: Sequence[NumberInput], *,
                       batch: bool) -> list[Number]:
        """All or nothing: any bad row refuses the request and every bad row is reported."""
        tenant_id = self._acting_tenant(uow.repo, principal)
        if batch and not inputs:
            raise InvalidArgument.for_field("numbers", "give at least one number")
        if len(inputs) > self._settings.max_batch_size:
            raise InvalidArgument.for_field("numbers", f"at most {self._settings.max_batch_size} per request")
        now = self._clock.now()
        rows: list[tuple[str, Number | None, Violations]] = []
        first_row: dict[str, str] = {}
        for i, given in enumerate(inputs):
            at = f"numbers[{i}]" if batch else "number"
            violations = Violations()
            number = self._new_number(given, tenant_id, now, at, violations)
            if number is not None:
                if number.phone_number in first_row:
                    violations.add(f"{at}.phone_number",
                                   f"{number.phone_number} is also {first_row[number.phone_number]}")
                else:
                    first_row[number.phone_number] = at
            rows.append((at, number if not violations else None, violations))
        campaign_ids = sorted({c for _, n, _ in rows if n for c in n.campaign_ids})
        known_campaigns = uow.repo.existing_campaigns(tenant_id, campaign_ids, lock="share")
        taken = uow.repo.existing_numbers(tenant_id, [n.phone_number for _, n, _ in rows if n])
        conflicts = Violations()
        for at, number, violations in rows:
            if number is None:
                continue
            for j, campaign_id in enumerate(number.campaign_ids):
                if campaign_id not in known_campaigns:
                    violations.add(f"{at}.campaign_ids[{j}]", f"campaign {campaign_id!r} not found")
            if number.phone_number in taken:
                conflicts.add(f"{at}.phone_number", f"{number.phone_number} already exists")
        invalid = [v for _, _, row in rows for v in row]
        if invalid:
            raise InvalidArgument.for_fields(sorted([*invalid, *conflicts], key=_row_order))
        if conflicts:
            raise AlreadyExists(f"{len(conflicts)} number(s) already exist: "
                                + "; ".join(f"{v.field}: {v.description}" for v in conflicts[:5]),
                                violations=conflicts)
        numbers = [n for _, n, _ in rows if n is not None]
        uow.repo.add_numbers(numbers)
        if len(numbers) >= self._settings.analyze_after_import:
            uow.after_commit.append(self._tx.refresh_statistics)
        uow.repo.add_transitions([Transition(tenant_id, n.phone_number, None, n.state, principal.actor, "created",
                                             now) for n in numbers])
        uow.publish(ChangeKind.CREATED, numbers)
        uow.publish(ChangeKind.CREATED, [Assignment(tenant_id, c, n.phone_number)
                                         for n in numbers for c in n.campaign_ids])
        for number in numbers:
            uow.audit(CREATED, number)
        return numbers

    def _new_number(self, given: NumberInput, tenant_id: str, now: datetime, at: str,
                    violations: Violations) -> Number | None:
        parsed = validation.phone_number(given.phone_number, f"{at}.phone_number", violations)
        fields = self._number_fields(given, at, violations, now)
        plan = None
        if given.start_warming:
            plan = lifecycle.warmup_plan(given.warmup_plan, self._lifecycle, f"{at}.warmup_plan", violations)
        elif given.warmup_plan is not None:
            violations.add(f"{at}.warmup_plan", "only with start_warming")
        campaign_ids: set[str] = set()
        for j, campaign_id in enumerate(given.campaign_ids):
            if not campaign_id:
                violations.add(f"{at}.campaign_ids[{j}]", "empty campaign id")
            else:
                campaign_ids.add(campaign_id)
        if parsed is None or violations:
            return None
        state = LifecycleState.WARMING if given.start_warming else LifecycleState.ACTIVE
        return Number(
            phone_number=parsed.e164, tenant_id=tenant_id, country=parsed.country, area_code=parsed.area_code,
            exchange=parsed.exchange, region=parsed.region, time_zone=parsed.time_zone,
            inbound_required_until=None, state=state, state_time=now, rest_until=None, warmup_plan=plan,
            warmup_start_time=now if plan else None, campaign_ids=sorted(campaign_ids), create_time=now,
            update_time=now, etag=new_etag(), **fields)

    def _number_fields(self, given: NumberInput, at: str, violations: Violations, now: datetime,
                       only: Sequence[str] = ("display_name", "provider", "attestation", "registrations",
                                              "inbound_enabled", "labels")) -> dict[str, Any]:
        """The validated values of the named mutable fields."""
        values: dict[str, Any] = {}
        for name in only:
            where = f"{at}.{name}"
            if name == "display_name":
                values[name] = text(given.display_name, where, violations,
                                    max_length=self._settings.display_name_max_length)
            elif name == "provider":
                values[name] = text(given.provider, where, violations)
            elif name == "attestation":
                values[name] = enum_value(Attestation, given.attestation, where, violations,
                                          default=Attestation.UNKNOWN)
            elif name == "registrations":
                values[name] = validation.registrations(given.registrations, where, violations, now)
            elif name == "inbound_enabled":
                values[name] = given.inbound_enabled
            elif name == "inbound_required_until":
                values[name] = given.inbound_required_until
            elif name == "labels":
                values[name] = validation.labels(given.labels, where, violations, max_labels=self._settings.max_labels)
        return values

    def get_number(self, principal: Principal, phone_number: str) -> Number:
        key = _phone_key(phone_number, "phone_number")
        with self._tx.read() as repo:
            return self._number(repo, self._acting_tenant(repo, principal), key)

    def batch_get_numbers(self, principal: Principal, phone_numbers: Sequence[str]) -> BatchResult[Number]:
        wanted = checked_phone_numbers(phone_numbers, self._settings.max_batch_get)
        with self._tx.read() as repo:
            found = repo.get_numbers(self._acting_tenant(repo, principal), wanted)
        return in_request_order(wanted, found)

    @staticmethod
    def _number(repo: Repository, tenant_id: str, phone_number: str, lock: Lock = None) -> Number:
        number = repo.get_number(tenant_id, phone_number, lock=lock)
        if number is None:
            raise NotFound(f"number {phone_number} not found")
        return number

    def list_numbers(self, principal: Principal, query: NumberQuery) -> tuple[list[Number], str]:
        violations = Violations()
        flt = query.filter
        states = tuple(s for i, raw in enumerate(flt.states)
                       if (s := enum_value(LifecycleState, raw, f"states[{i}]", violations)) is not None)
        attestations = tuple(a for i, raw in enumerate(flt.attestations)
                             if (a := enum_value(Attestation, raw, f"attestations[{i}]", violations)) is not None)
        if flt.phone_number_prefix and not _PREFIX.fullmatch(flt.phone_number_prefix):
            violations.add("phone_number_prefix", "'+' then up to 15 digits, e.g. +1415")
        if flt.area_code and not _AREA_CODE.fullmatch(flt.area_code):
            violations.add("area_code", "digits only, e.g. 415")
        if len(flt.region) > 64:
            violations.add("region", "at most 64 characters")
        if violations:
            raise InvalidArgument.for_fields(violations)
        size = page_size(query.page_size)
        checked = NumberFilter(states=tuple(sorted(set(states))), campaign_id=flt.campaign_id,
                               area_code=flt.area_code, region=flt.region,
                               attestations=tuple(sorted(set(attestations))), labels=dict(flt.labels),
                               phone_number_prefix=flt.phone_number_prefix)
        fingerprint = filter_fingerprint(dataclasses.asdict(checked), query.order_by.value, query.descending)
        after = decode_page_token(query.page_token, fingerprint)
        with self._tx.read() as repo:
            tenant_id = self._acting_tenant(repo, principal)
            if checked.campaign_id and not repo.existing_campaigns(tenant_id, [checked.campaign_id]):
                raise NotFound(f"campaign {checked.campaign_id!r} not found")
            try:
                numbers = repo.list_numbers(tenant_id, checked, query.order_by, query.descending, after, size + 1)
            except ValueError:
                raise InvalidArgument.for_field("page_token", "not a page token this service issued") from None
        token = ""
        if len(numbers) > size:
            numbers = numbers[:size]
            token = encode_page_token(encode_number_key(query.order_by, numbers[-1]), fingerprint)
        return numbers, token

    def update_number(self, uow: UnitOfWork, principal: Principal, given: NumberInput, update: Update) -> Number:
        paths = checked_paths(FieldMask(paths=list(update.paths)), NUMBER_MUTABLE)
        key = _phone_key(given.phone_number, "number.phone_number")
        now = self._clock.now()
        violations = Violations()
        values = self._number_fields(given, "number", violations, now, only=paths)
        plan = None
        if "warmup_plan" in paths:
            plan = lifecycle.warmup_plan(given.warmup_plan, self._lifecycle, "number.warmup_plan", violations)
        if violations:
            raise InvalidArgument.for_fields(violations)
        number = self._number(uow.repo, self._acting_tenant(uow.repo, principal), key, lock="update")
        _check_etag(number.etag, update.etag, f"number {key}")
        before = copy.deepcopy(number)
        if plan is not None:
            if number.state is not LifecycleState.WARMING:
                raise FailedPrecondition(f"number {key} is {number.state.value}: a warm-up plan applies only while"
                                         " WARMING (use TransitionNumber)", reason="NOT_WARMING")
            values["warmup_plan"] = plan
        previous = number.etag
        labels_changed = "labels" in values and values["labels"] != number.labels
        for name, value in values.items():
            setattr(number, name, value)
        number.update_time, number.etag = now, new_etag()
        if not uow.repo.save_number(number, previous, labels_changed=labels_changed):
            raise _conflict(f"number {key}")
        uow.publish(ChangeKind.UPDATED, [number])
        uow.audit(UPDATED, number, before=before)
        return number

    def transition_number(self, uow: UnitOfWork, principal: Principal, given: TransitionInput,
                          field_prefix: str = "") -> tuple[Number, Transition]:
        violations = Violations()
        target = enum_value(LifecycleState, given.target_state, f"{field_prefix}target_state", violations)
        reason = text(given.reason, f"{field_prefix}reason", violations, max_length=MAX_REASON, multiline=True)
        key = _phone_key(given.phone_number, f"{field_prefix}phone_number")
        now = self._clock.now()
        rest_end: datetime | None = None
        plan: WarmupPlan | None = None
        if target is LifecycleState.RESTING:
            rest_end = lifecycle.rest_until(given.rest_until, now, self._lifecycle, "rest_until", violations)
        elif given.rest_until is not None:
            violations.add("rest_until", "only for RESTING")
        if target is LifecycleState.WARMING:
            plan = lifecycle.warmup_plan(given.warmup_plan, self._lifecycle, "warmup_plan", violations)
        elif given.warmup_plan is not None:
            violations.add("warmup_plan", "only for WARMING")
        if violations or target is None:
            raise InvalidArgument.for_fields(violations)
        tenant_id = self._acting_tenant(uow.repo, principal)
        # Locked first: a concurrent assignment either finishes before the checks below or sees the result.
        number = self._number(uow.repo, tenant_id, key, lock="update")
        _check_etag(number.etag, given.etag, f"number {key}")
        lifecycle.check_allowed(number.state, target)
        before = copy.deepcopy(number)
        previous, from_state = number.etag, number.state
        lifecycle.enter(number, target, now, rest_end=rest_end, plan=plan)
        if target is LifecycleState.RETIRED:
            left = uow.repo.unassign_everywhere(tenant_id, key)
            number.campaign_ids = []
            if number.inbound_enabled:  # callbacks keep landing for a while after the last outbound call
                hold = now + timedelta(seconds=self._settings.inbound_hold_after_retire)
                number.inbound_required_until = max(hold, number.inbound_required_until or hold)
            uow.publish(ChangeKind.DELETED, [Assignment(tenant_id, c, key) for c in left])
        number.update_time, number.etag = now, new_etag()
        if not uow.repo.save_number(number, previous):
            raise _conflict(f"number {key}")
        transition = Transition(tenant_id, key, from_state, target, principal.actor, reason, now)
        uow.repo.add_transitions([transition])
        uow.publish(ChangeKind.UPDATED, [number])
        uow.audit(TRANSITIONED, number, before=before, reason=reason)
        return number, transition

    def retire_number(self, uow: UnitOfWork, principal: Principal, phone_number: str, reason: str,
                      etag: str) -> Number:
        given = TransitionInput(phone_number, LifecycleState.RETIRED.value, reason or "retired", etag=etag)
        return self.transition_number(uow, principal, given)[0]

    def list_transitions(self, principal: Principal, phone_number: str, page: Page) -> tuple[list[Transition], str]:
        key = _phone_key(phone_number, "phone_number")
        size = page_size(page.size)
        fingerprint = filter_fingerprint("transitions", key)
        before = decode_page_token(page.token, fingerprint)
        with self._tx.read() as repo:
            tenant_id = self._acting_tenant(repo, principal)
            self._number(repo, tenant_id, key)
            try:
                rows = repo.list_transitions(tenant_id, key, before, size + 1)
            except (ValueError, TypeError, IndexError):
                raise InvalidArgument.for_field("page_token", "not a page token this service issued") from None
        token = encode_page_token(rows[size - 1][1], fingerprint) if len(rows) > size else ""
        return [t for t, _ in rows[:size]], token

    # --- campaigns --------------------------------------------------------------------------------------

    def create_campaign(self, uow: UnitOfWork, principal: Principal, given: CampaignInput) -> Campaign:
        violations = Violations()
        name = text(given.name, "campaign.name", violations, required=True)
        description = text(given.description, "campaign.description", violations, max_length=MAX_TEXT,
                           multiline=True)
        defaults = self._policy_defaults
        effective = policy.resolve(given.policy, defaults, defaults, policy.FIELDS, "campaign.policy", violations)
        tenant_id = self._acting_tenant(uow.repo, principal)
        effective = self._checked_policy(uow.repo, tenant_id, effective, violations)
        if violations:
            raise InvalidArgument.for_fields(violations)
        if uow.repo.campaign_name_taken(tenant_id, name):
            raise _name_taken(name)
        now = self._clock.now()
        campaign = Campaign(new_id("cmp"), tenant_id, name, description, effective, 0, now, now, new_etag())
        uow.repo.add_campaign(campaign)
        uow.publish(ChangeKind.CREATED, [campaign])
        uow.audit(CREATED, campaign)
        return campaign

    def _checked_policy(self, repo: Repository, tenant_id: str, effective: CallingPolicy,
                        violations: Violations) -> CallingPolicy:
        """Check the effective policy; the fallback caller ID must be one of the tenant's numbers in use."""
        policy.check(effective, self._policy_limits, "campaign.policy", violations)
        raw = effective.fallback_phone_number
        if not raw:
            return effective
        where = "campaign.policy.fallback_phone_number"
        parsed = validation.phone_number(raw, where, violations)
        if parsed is None:
            return effective
        number = repo.get_number(tenant_id, parsed.e164)
        if number is None:
            violations.add(where, f"{parsed.e164} is not one of this tenant's numbers")
        elif number.state is LifecycleState.RETIRED:
            violations.add(where, f"{parsed.e164} is retired")
        return dataclasses.replace(effective, fallback_phone_number=parsed.e164)

    def get_campaign(self, principal: Principal, campaign_id: str) -> Campaign:
        with self._tx.read() as repo:
            return self._campaign(repo, self._acting_tenant(repo, principal), campaign_id)

    @staticmethod
    def _campaign(repo: Repository, tenant_id: str, campaign_id: str, lock: Lock = None) -> Campaign:
        if not campaign_id:
            raise InvalidArgument.for_field("campaign_id", "required")
        campaign = repo.get_campaign(tenant_id, campaign_id, lock=lock)
        if campaign is None:
            raise NotFound(f"campaign {campaign_id!r} not found")
        return campaign

    def list_campaigns(self, principal: Principal, page: Page) -> tuple[list[Campaign], str]:
        size = page_size(page.size)
        fingerprint = filter_fingerprint("campaigns")
        after = decode_page_token(page.token, fingerprint)
        with self._tx.read() as repo:
            campaigns = repo.list_campaigns(self._acting_tenant(repo, principal),
                                            str(after[0]) if after else None, size + 1)
        token = encode_page_token([campaigns[size - 1].id], fingerprint) if len(campaigns) > size else ""
        return campaigns[:size], token

    def update_campaign(self, uow: UnitOfWork, principal: Principal, given: CampaignInput,
                        update: Update) -> Campaign:
        paths = checked_paths(FieldMask(paths=list(update.paths)), CAMPAIGN_MUTABLE, prefixes=("policy.",))
        policy_fields = _sub_fields(paths, "policy", policy.FIELDS, aliases={"local_presence.tiers": "local_presence"})
        tenant_id = self._acting_tenant(uow.repo, principal)
        campaign = self._campaign(uow.repo, tenant_id, given.id, lock="update")
        _check_etag(campaign.etag, update.etag, f"campaign {given.id}")
        before = copy.deepcopy(campaign)
        violations = Violations()
        if "name" in paths:
            campaign.name = text(given.name, "campaign.name", violations, required=True)
        if "description" in paths:
            campaign.description = text(given.description, "campaign.description", violations,
                                        max_length=MAX_TEXT, multiline=True)
        if policy_fields:
            base = self._policy_defaults if "policy" in paths else campaign.policy
            resolved = policy.resolve(given.policy, base, self._policy_defaults, policy_fields, "campaign.policy",
                                      violations)
            campaign.policy = self._checked_policy(uow.repo, tenant_id, resolved, violations)
        if violations:
            raise InvalidArgument.for_fields(violations)
        if "name" in paths and uow.repo.campaign_name_taken(tenant_id, campaign.name, other_than=campaign.id):
            raise _name_taken(campaign.name)
        previous = campaign.etag
        campaign.update_time, campaign.etag = self._clock.now(), new_etag()
        if not uow.repo.save_campaign(campaign, previous):
            raise _conflict(f"campaign {campaign.id}")
        uow.publish(ChangeKind.UPDATED, [campaign])
        uow.audit(UPDATED, campaign, before=before)
        return campaign

    def delete_campaign(self, uow: UnitOfWork, principal: Principal, campaign_id: str, etag: str) -> None:
        tenant_id = self._acting_tenant(uow.repo, principal)
        campaign = self._campaign(uow.repo, tenant_id, campaign_id, lock="update")
        _check_etag(campaign.etag, etag, f"campaign {campaign_id}")
        members = sorted(uow.repo.campaign_members(tenant_id, campaign_id))
        if not uow.repo.delete_campaign(campaign, campaign.etag):
            raise _conflict(f"campaign {campaign_id}")
        uow.publish(ChangeKind.DELETED, [Assignment(tenant_id, campaign_id, p) for p in members])
        uow.publish(ChangeKind.DELETED, [campaign])
        uow.audit(DELETED, campaign)

    def assign_numbers(self, uow: UnitOfWork, principal: Principal, campaign_id: str,
                       phone_numbers: Sequence[str]) -> Campaign:
        tenant_id = self._acting_tenant(uow.repo, principal)
        # The campaign and the numbers stay as read until commit: a concurrent delete or retirement waits.
        campaign = self._campaign(uow.repo, tenant_id, campaign_id, lock="share")
        wanted = self._phone_list(phone_numbers)
        found = uow.repo.get_numbers(tenant_id, list(wanted), lock="share")
        violations = Violations()
        for phone, at in wanted.items():
            number = found.get(phone)
            if number is None:
                violations.add(at, f"number {phone} not found")
            elif number.state is LifecycleState.RETIRED:
                violations.add(at, f"number {phone} is retired")
        if violations:
            raise InvalidArgument.for_fields(violations)
        members = uow.repo.campaign_members(tenant_id, campaign_id, list(wanted))
        added = [p for p in wanted if p not in members]
        uow.repo.assign(tenant_id, campaign_id, added)
        uow.publish(ChangeKind.CREATED, [Assignment(tenant_id, campaign_id, p) for p in added])
        if added:
            uow.audit(NUMBERS_ASSIGNED, campaign, changes=[FieldChange("phone_numbers", new=added)])
        campaign.number_count += len(added)
        return campaign

    def unassign_numbers(self, uow: UnitOfWork, principal: Principal, campaign_id: str,
                         phone_numbers: Sequence[str]) -> Campaign:
        """Numbers not in the campaign are skipped: the campaign ends without them either way."""
        tenant_id = self._acting_tenant(uow.repo, principal)
        campaign = self._campaign(uow.repo, tenant_id, campaign_id, lock="share")
        wanted = self._phone_list(phone_numbers)
        members = uow.repo.campaign_members(tenant_id, campaign_id, list(wanted))
        removed = [p for p in wanted if p in members]
        uow.repo.unassign(tenant_id, campaign_id, removed)
        uow.publish(ChangeKind.DELETED, [Assignment(tenant_id, campaign_id, p) for p in removed])
        if removed:
            uow.audit(NUMBERS_UNASSIGNED, campaign, changes=[FieldChange("phone_numbers", old=removed)])
        campaign.number_count -= len(removed)
        return campaign

    def _phone_list(self, phone_numbers: Sequence[str]) -> dict[str, str]:
        """{number: its field} for a request's phone_numbers, in order, without repeats."""
        if not phone_numbers:
            raise InvalidArgument.for_field("phone_numbers", "give at least one number")
        if len(phone_numbers) > self._settings.max_batch_size:
            raise InvalidArgument.for_field("phone_numbers", f"at most {self._settings.max_batch_size} per request")
        violations = Violations()
        wanted: dict[str, str] = {}
        for i, phone in enumerate(phone_numbers):
            if not _E164.fullmatch(phone):
                violations.add(f"phone_numbers[{i}]", "must be E.164: '+' then 8 to 15 digits")
            else:
                wanted.setdefault(phone, f"phone_numbers[{i}]")
        if violations:
            raise InvalidArgument.for_fields(violations)
        return wanted

    # --- tenants ----------------------------------------------------------------------------------------

    def ensure_tenants(self, tenant_ids: Sequence[str]) -> list[str]:
        """Create the tenants named in settings that do not exist yet; returns those created."""
        now = self._clock.now()
        created = []
        with platform_rows(), self._tx.write(_PLATFORM_SCOPE, None, SYSTEM) as uow:
            for tenant_id in tenant_ids:
                tenant = Tenant(tenant_id, tenant_id, BusinessProfile(), now, now, new_etag())
                if uow.repo.add_tenant_if_missing(tenant):
                    uow.publish(ChangeKind.CREATED, [tenant])
                    uow.audit(CREATED, tenant, reason="a static API key in the settings names it")
                    created.append(tenant_id)
        return created

    def create_tenant(self, uow: UnitOfWork, principal: Principal, given: TenantInput) -> Tenant:
        if principal.role is not Role.ADMIN:
            raise PermissionDenied("creating tenants needs an admin key", reason="ADMIN_ONLY")
        violations = Violations()
        if not validation.TENANT_ID.fullmatch(given.id):
            violations.add("tenant.id", "2-63 lowercase letters, digits and dashes, starting with a letter or digit")
        display_name = text(given.display_name, "tenant.display_name", violations) or given.id
        profile = validation.business_profile(given.business_profile, "tenant.business_profile", violations)
        if violations:
            raise InvalidArgument.for_fields(violations)
        now = self._clock.now()
        tenant = Tenant(given.id, display_name, profile, now, now, new_etag())
        if not uow.repo.add_tenant_if_missing(tenant):
            raise AlreadyExists(f"tenant {given.id!r} already exists", violations=[
                FieldViolation("tenant.id", "already exists")])
        uow.publish(ChangeKind.CREATED, [tenant])
        uow.audit(CREATED, tenant)
        return tenant

    def get_tenant(self, principal: Principal, tenant_id: str) -> Tenant:
        with self._tx.read() as repo:
            return self._tenant(repo, principal.tenant_for(tenant_id))

    @staticmethod
    def _tenant(repo: Repository, tenant_id: str) -> Tenant:
        tenant = repo.get_tenant(tenant_id)
        if tenant is None:
            raise NotFound(f"tenant {tenant_id!r} not found")
        return tenant

    def update_tenant(self, uow: UnitOfWork, principal: Principal, given: TenantInput, update: Update) -> Tenant:
        paths = checked_paths(FieldMask(paths=list(update.paths)), TENANT_MUTABLE, prefixes=("business_profile.",))
        profile_fields = _sub_fields(paths, "business_profile", PROFILE_FIELDS)
        tenant = self._tenant(uow.repo, principal.tenant_for(given.id, "tenant.id"))
        _check_etag(tenant.etag, update.etag, f"tenant {tenant.id}")
        before = copy.deepcopy(tenant)
        violations = Violations()
        if "display_name" in paths:
            tenant.display_name = text(given.display_name, "tenant.display_name", violations, required=True)
        if profile_fields:
            checked = validation.business_profile(given.business_profile, "tenant.business_profile", violations)
            tenant.business_profile = dataclasses.replace(
                tenant.business_profile, **{f: getattr(checked, f) for f in profile_fields})
        if violations:
            raise InvalidArgument.for_fields(violations)
        previous = tenant.etag
        tenant.update_time, tenant.etag = self._clock.now(), new_etag()
        if not uow.repo.save_tenant(tenant, previous):
            raise _conflict(f"tenant {tenant.id}")
        uow.publish(ChangeKind.UPDATED, [tenant])
        uow.audit(UPDATED, tenant, before=before)
        return tenant

    # --- API keys ---------------------------------------------------------------------------------------

    def create_api_key(self, uow: UnitOfWork, principal: Principal, name: str, role: str,
                       tenant_id: str) -> tuple[ApiKey, str]:
        """A new key and its secret (the secret is never stored, only its SHA-256)."""
        violations = Violations()
        name = text(name, "name", violations, required=True)
        checked_role = enum_value(ApiKeyRole, role, "role", violations)
        if violations or checked_role is None:
            raise InvalidArgument.for_fields(violations)
        tenant = self._acting_tenant(uow.repo, principal, tenant_id, "tenant_id")
        secret = generate_key()
        key = ApiKey(new_id("key"), tenant, name, checked_role, secret[:12], hash_key(secret), self._clock.now())
        uow.repo.add_api_key(key)
        uow.publish(ChangeKind.CREATED, [key])
        uow.audit(CREATED, key)
        return key, secret

    def list_api_keys(self, principal: Principal, include_revoked: bool, page: Page) -> tuple[list[ApiKey], str]:
        size = page_size(page.size)
        fingerprint = filter_fingerprint("api_keys", include_revoked)
        after = decode_page_token(page.token, fingerprint)
        with self._tx.read() as repo:
            keys = repo.list_api_keys(self._acting_tenant(repo, principal), include_revoked,
                                      str(after[0]) if after else None, size + 1)
        token = encode_page_token([keys[size - 1].id], fingerprint) if len(keys) > size else ""
        return keys[:size], token

    def revoke_api_key(self, uow: UnitOfWork, principal: Principal, key_id: str) -> ApiKey:
        if not key_id:
            raise InvalidArgument.for_field("api_key_id", "required")
        key = uow.repo.get_api_key(self._acting_tenant(uow.repo, principal), key_id)
        if key is None:
            raise NotFound(f"API key {key_id!r} not found")
        if key.revoke_time is None:
            before = dataclasses.replace(key)
            key.revoke_time = self._clock.now()
            uow.repo.revoke_api_key(key)
            uow.publish(ChangeKind.UPDATED, [key])
            uow.audit(REVOKED, key, before=before)
        return key

    def principal_for_key(self, secret_sha256: str) -> Principal | None:
        """The caller a stored, unrevoked key stands for."""
        with self._tx.read() as repo:
            key = repo.active_api_key(secret_sha256)
        if key is None:
            return None
        role = Role.READ_ONLY if key.role is ApiKeyRole.READ_ONLY else Role.TENANT
        return Principal(role, key.tenant_id, key_id=key.id, name=key.name)

    # --- change feed ------------------------------------------------------------------------------------

    def watch(self, principal: Principal, after: int, tenant_id: str, snapshot: bool,
              is_active: Callable[[], bool]) -> Iterator[ChangeRecord | Heartbeat | SnapshotItem]:
        """Changes the caller may see after a revision (or a snapshot first), heartbeats while idle.

        Tenant keys see their own tenant; service keys every tenant or the one asked for. Key material
        (api_key entries, with the secret's digest) goes to service keys only.
        """
        if after < 0:
            raise InvalidArgument.for_field("after_revision", "must not be negative")
        # Service keys watch every tenant unless they name one; tenant keys only ever their own.
        scope = (tenant_id or principal.tenant_id or None) if principal.is_platform else principal.tenant_for(tenant_id)
        with_keys = principal.role is Role.SERVICE
        snapshot_items = None
        if snapshot:
            def snapshot_items(session: Any) -> Iterator[SnapshotItem]:
                return _snapshot(Repository(session), scope, with_keys)
        for item in self._feed.watch(
                self._tx.db.read, after, scope, is_active, poll_interval=self._settings.watch_poll_interval,
                heartbeat_interval=self._settings.watch_heartbeat_interval, snapshot=snapshot_items,
                snapshot_session=self._tx.db.snapshot):
            if isinstance(item, ChangeRecord) and item.resource_type == API_KEY and not with_keys:
                continue
            yield item

    def prune(self) -> tuple[int, int]:
        """Drop feed entries and request ids older than their retention; returns how many of each."""
        now = self._clock.now()
        with platform_rows(), self._tx.db.transaction() as session:
            entries = self._feed.prune(session, now - timedelta(seconds=self._settings.feed_retention))
            requests = Repository(session).prune_request_ids(
                now - timedelta(seconds=self._settings.idempotency_retention))
        return entries, requests


def _snapshot(repo: Repository, tenant_id: str | None, with_keys: bool) -> Iterator[SnapshotItem]:
    for tenant in repo.tenants(tenant_id):
        yield SnapshotItem(tenant.id, resource_type(tenant), tenant)
    if with_keys:
        for key in repo.api_keys(tenant_id):
            yield SnapshotItem(key.tenant_id, API_KEY, key)
    for campaign in repo.campaigns(tenant_id):
        yield SnapshotItem(campaign.tenant_id, resource_type(campaign), campaign)
    for number in repo.numbers(tenant_id):
        yield SnapshotItem(number.tenant_id, resource_type(number), number)
    for assignment in repo.assignments(tenant_id):
        yield SnapshotItem(assignment.tenant_id, resource_type(assignment), assignment)


def _phone_key(raw: str, field: str) -> str:
    """A stored number's identity: E.164 as the registry keeps it."""
    if not raw:
        raise InvalidArgument.for_field(field, "required: an E.164 number such as +14155550123")
    if not _E164.fullmatch(raw):
        raise InvalidArgument.for_field(field, "must be E.164: '+' then 8 to 15 digits")
    return raw


def _check_etag(current: str, expected: str, what: str) -> None:
    if expected and expected != current:
        raise Aborted(f"{what} changed since etag {expected!r} was read; read it again and retry",
                      reason="ETAG_MISMATCH", metadata={"etag": current})


def _conflict(what: str) -> Aborted:
    return Aborted(f"{what} was changed by a concurrent request; read it again and retry", reason="CONFLICT")


def _name_taken(name: str) -> AlreadyExists:
    return AlreadyExists(f"a campaign named {name!r} already exists",
                         violations=[FieldViolation("campaign.name", "already used by another campaign")])


def _sub_fields(paths: Sequence[str], parent: str, allowed: Sequence[str],
                aliases: dict[str, str] | None = None) -> list[str]:
    """The fields of parent that paths name: all of them for "parent", else those of "parent.<field>"."""
    if parent in paths:
        return list(allowed)
    chosen: list[str] = []
    violations = Violations()
    for i, path in enumerate(paths):
        if not path.startswith(parent + "."):
            continue
        name = path[len(parent) + 1:]
        name = (aliases or {}).get(name, name)
        if name not in allowed:
            violations.add(f"update_mask.paths[{i}]", f"{path!r} cannot be updated; {parent} has: "
                                                      + ", ".join(allowed))
        elif name not in chosen:
            chosen.append(name)
    if violations:
        raise InvalidArgument.for_fields(violations, reason="FIELD_NOT_MUTABLE")
    return chosen


_ROW = re.compile(r"numbers\[(\d+)\]")


def _row_order(violation: FieldViolation) -> tuple[int, str]:
    found = _ROW.match(violation.field)
    return (int(found.group(1)) if found else -1, violation.field)
