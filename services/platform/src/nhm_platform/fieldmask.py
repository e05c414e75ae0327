"""Update masks: only the paths a resource allows may be changed; server-owned fields are refused."""

from __future__ import annotations

from collections.abc import Collection

from google.protobuf.field_mask_pb2 import FieldMask

from nhm_platform.errors import FieldViolation, InvalidArgument


def checked_paths(mask: FieldMask, allowed: Collection[str], *, field: str = "update_mask",
                  prefixes: Collection[str] = ()) -> list[str]:
    """The mask's paths, each in ``allowed`` or under one of ``prefixes`` ("policy." allows "policy.x")."""
    if not mask.paths:
        raise InvalidArgument.for_field(field, f"name the fields to update; allowed: {', '.join(sorted(allowed))}")
    violations = []
    for i, path in enumerate(mask.paths):
        if path in allowed or any(path.startswith(p) and len(path) > len(p) for p in prefixes):
            continue
        violations.append(FieldViolation(
            f"{field}.paths[{i}]",
            f"{path!r} cannot be updated; allowed: {', '.join(sorted(allowed))}"))
    if violations:
        raise InvalidArgument.for_fields(violations, reason="FIELD_NOT_MUTABLE")
    return list(dict.fromkeys(mask.paths))
