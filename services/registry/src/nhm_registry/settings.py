"""The registry service's settings (environment variables NHM_REGISTRY_<FIELD> or NHM_<FIELD>)."""

from __future__ import annotations

from dataclasses import dataclass

from nhm_platform.settings import ServerSettings


@dataclass(frozen=True)
class RegistrySettings(ServerSettings):
    port: int = 50051
