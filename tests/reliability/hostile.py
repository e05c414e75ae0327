"""Hostile requests for any RPC, generated from its request message's descriptor (hypothesis strategies).

Strings are tricky phone numbers, ids that exist and ids that do not, empty, oversized, control and odd
Unicode text; numbers are extremes and negatives; enums take values outside their range; durations and
timestamps are negative, absurd or malformed (nanos of the wrong sign); field masks name server-owned fields
(tenant, state, usage, times) next to real and made-up ones; repeated fields are empty, small, or a huge batch.
Lists of phone numbers are also all well formed (some known, some repeated), so that batch gets get past the
syntax checks to their lookups and their duplicate check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor as d
from google.protobuf import message_factory
from hypothesis import strategies as st

TRICKY_PHONES = [
    "+14152220123", "+14155550123", "+14155550100", "+19005550123", "+1415222012", "+141522201234567890",
    "14152220123", "+1 415 222 0123", "+1-415-222-0123", "+1 (415) 222-0123 ext. 5", "tel:+14152220123",
    "+1415222\u202e0123", "\u200e+14152220123", "+\uff11\uff14\uff11\uff15\uff12\uff12\uff12\uff10\uff11\uff12\uff13",
    "+14152220123\x00", "+", "++14152220123", "+0", "+999999999999999", "+10000000000", "+447911123456",
    "+4930123456", "+861012345678", " +14152220123 ", "+1415222O123", "+\uff114152220123",
]
WELL_FORMED_PHONES = ["+14152220123", "+14155550100", "+19005550123", "+447911123456", "+10000000000",
                      "+999999999999999"]
ODD_TEXT = ["", " ", "\x00", "\u202e", "\ufeff", "é", "e\u0301", "🙂" * 3, "\U0010ffff", "a" * 256, "x" * 70_000,
            "../../etc/passwd", "' OR 1=1 --", "%s%n", "<script>", "tenant/acme/numbers/1", "*", "\n\r\t"]
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
INT_EXTREMES = {
    d.FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), d.FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    d.FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1), d.FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    d.FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1), d.FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    d.FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), d.FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    d.FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), d.FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
SERVER_OWNED = ["tenant_id", "name", "id", "state", "create_time", "update_time", "etag", "usage", "score",
                "status", "revision", "revoke_time", "secret", "secret_sha256", "assigned_campaign_ids"]
HUGE_BATCH = 5_000


def strings(known: Sequence[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(TRICKY_PHONES), st.sampled_from(ODD_TEXT), TEXT,
                     st.sampled_from(list(known) or [""]))


def request_strategy(descriptor: d.Descriptor, known: Sequence[str], depth: int = 0) -> st.SearchStrategy[Any]:
    """Requests of this message type, each field set or not."""
    cls = message_factory.GetMessageClass(descriptor)
    fields = [f for f in descriptor.fields if not (f.message_type and depth >= 3)]

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        message = cls()
        chosen_oneofs: dict[str, str] = {}
        for field in fields:
            if field.containing_oneof is not None:
                name = chosen_oneofs.setdefault(field.containing_oneof.name, draw(st.sampled_from(
                    [f.name for f in field.containing_oneof.fields] + [""])))
                if name != field.name:
                    continue
            if not draw(st.booleans()):
                continue
            _set(draw, message, field, descriptor, known, depth)
        return message

    return build()


def _set(draw: st.DrawFn, message: Any, field: d.FieldDescriptor, parent: d.Descriptor, known: Sequence[str],
         depth: int) -> None:
    repeated = field.is_repeated
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        target = getattr(message, field.name)
        for _ in range(draw(st.integers(0, 3))):
            key = draw(strings(known))
            value_field = field.message_type.fields_by_name["value"]
            if value_field.message_type is None:
                target[key] = draw(_scalar(value_field, known))
            else:
                target[key].CopyFrom(draw(request_strategy(value_field.message_type, known, depth + 1)))
        return
    if not repeated:
        if field.message_type is not None:
            getattr(message, field.name).CopyFrom(draw(_message(field, parent, known, depth)))
        else:
            setattr(message, field.name, draw(_scalar(field, known)))
        return
    target = getattr(message, field.name)
    if field.name == "phone_numbers" and draw(st.booleans()):
        target.extend(draw(st.lists(st.sampled_from(WELL_FORMED_PHONES + [k for k in known if k.startswith("+")]),
                                    min_size=1, max_size=8)))
        return
    size = draw(st.sampled_from([0, 1, 2, 3, 8, HUGE_BATCH]))
    one = _message(field, parent, known, depth) if field.message_type is not None else _scalar(field, known)
    if size == HUGE_BATCH:  # the same element many times: a huge batch without drawing each one (~2 MB at most)
        element = draw(one)
        element_size = element.ByteSize() if field.message_type is not None else len(str(element))
        items = [element] * min(size, max(1, 2_000_000 // max(1, element_size)))
    else:
        items = [draw(one) for _ in range(size)]
    if field.message_type is not None:
        for item in items:
            target.add().CopyFrom(item)
    else:
        target.extend(items)


def _scalar(field: d.FieldDescriptor, known: Sequence[str]) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == d.FieldDescriptor.TYPE_STRING:
        return strings(known)
    if kind == d.FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.just(b"\xff" * 70_000), st.just(b"phone,source\n+1,x\n\x00"))
    if kind == d.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (d.FieldDescriptor.TYPE_DOUBLE, d.FieldDescriptor.TYPE_FLOAT):
        return st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.sampled_from([-1.0, 0.0, 1e30]))
    if kind == d.FieldDescriptor.TYPE_ENUM:
        values = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(values), st.integers(-5, 1000), st.just(2**31 - 1))
    low, high = INT_EXTREMES[kind]
    return st.one_of(st.integers(low, high), st.sampled_from([v for v in (-1, 0, 1, 10**6, low, high)
                                                              if low <= v <= high]))


def _message(field: d.FieldDescriptor, parent: d.Descriptor, known: Sequence[str],
             depth: int) -> st.SearchStrategy[Any]:
    full_name = field.message_type.full_name
    cls = message_factory.GetMessageClass(field.message_type)
    if full_name == "google.protobuf.Duration":
        return st.builds(lambda s, n: cls(seconds=s, nanos=n),
                         st.one_of(st.integers(-(10**12), 10**12),
                                   st.sampled_from([-1, 0, 1, 86_400, 315_576_000_001])),
                         st.one_of(st.just(0), st.integers(-999_999_999, 999_999_999)))
    if full_name == "google.protobuf.Timestamp":
        return st.builds(lambda s, n: cls(seconds=s, nanos=n),
                         st.one_of(st.integers(-(10**11), 10**11),
                                   st.sampled_from([-62_135_596_801, 0, 1_767_225_600, 253_402_300_800])),
                         st.one_of(st.just(0), st.integers(-1, 1_000_000_000)))
    if full_name == "google.protobuf.FieldMask":
        siblings = [f for f in parent.fields if f.message_type is not None and f.message_type is not field.message_type]
        paths = list(SERVER_OWNED)
        for sibling in siblings:
            paths.append(sibling.name)
            paths += [f"{sibling.name}.{f.name}" for f in sibling.message_type.fields]
            paths += [f"{sibling.name}.{owned}" for owned in SERVER_OWNED]
        return st.builds(lambda chosen: cls(paths=chosen),
                         st.lists(st.one_of(st.sampled_from(paths), st.sampled_from(ODD_TEXT[:6])), max_size=4))
    return request_strategy(field.message_type, known, depth + 1)
