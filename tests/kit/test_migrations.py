"""Each service's migrations build exactly the schema its models describe, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from nhm_allocation.app import SPEC as ALLOCATION
from nhm_allocation.models import metadata as allocation_metadata
from nhm_registry.app import SPEC as REGISTRY
from nhm_registry.models import metadata as registry_metadata
from nhm_remediation.app import SPEC as REMEDIATION
from nhm_remediation.models import metadata as remediation_metadata
from nhm_scoring.app import SPEC as SCORING
from nhm_scoring.models import metadata as scoring_metadata

CASES = [(REGISTRY, registry_metadata), (SCORING, scoring_metadata), (ALLOCATION, allocation_metadata),
         (REMEDIATION, remediation_metadata)]


@pytest.mark.parametrize("spec, metadata", CASES, ids=[spec.name for spec, _ in CASES])
def test_migrations_match_models(database_url, spec, metadata):
    engine = create_engine(database_url(spec))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                                   "version_table": spec.version_table})
            diff = [d for d in compare_metadata(context, metadata)
                    if not (d[0] == "remove_table" and d[1].name == spec.version_table)]
    finally:
        engine.dispose()
    assert diff == []
