"""Composition root of the registry service."""

from __future__ import annotations

from pathlib import Path

from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm_platform.auth import Principal
from nhm_platform.server import ServiceRegistration, method_names
from nhm_platform.service import BuiltService, ServiceContext, ServiceSpec
from nhm_registry import messages, models
from nhm_registry.housekeeping import scheduled_pruner
from nhm_registry.service import Registry
from nhm_registry.servicer import RegistryServiceServicer
from nhm_registry.settings import RegistrySettings
from nhm_registry.unit_of_work import Transactions


class StoredKeyResolver:
    """Authenticates keys created through the API (read on every call, so a revocation holds at once)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def resolve(self, secret_sha256: str) -> Principal | None:
        return self._registry.principal_for_key(secret_sha256)


def build(context: ServiceContext[RegistrySettings]) -> BuiltService:
    transactions = Transactions(context.db, models.feed, models.idempotency, models.audit, context.clock,
                                messages.feed_entry, messages.audit_subject)
    registry = Registry(transactions, models.feed, context.clock, context.settings)
    registry.ensure_tenants(context.static_keys.tenant_ids)
    servicer = RegistryServiceServicer(registry)
    pruner = scheduled_pruner(registry.prune, context.settings.prune_interval)
    service_name = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name
    registration = ServiceRegistration(
        service_names=[service_name],
        add_to_server=lambda server: registry_pb2_grpc.add_RegistryServiceServicer_to_server(servicer, server),
        on_stop=[pruner.stop],
        rate_limited_methods=method_names(service_name, "BatchCreateNumbers", "AssignNumbers", "UnassignNumbers"),
    )
    return BuiltService(registration, key_resolvers=[StoredKeyResolver(registry)], on_start=[pruner.start],
                        audit=models.audit)


SPEC = ServiceSpec(
    name="registry",
    settings_class=RegistrySettings,
    migrations_dir=Path(__file__).parent / "migrations",
    build=build,
)
