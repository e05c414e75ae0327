"""Unit tests of the kit's pure parts: settings, page tokens, update masks, phone numbers, ids."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from nhm_platform.errors import InvalidArgument
from nhm_platform.fieldmask import checked_paths
from nhm_platform.ids import new_id
from nhm_platform.pagination import decode_page_token, encode_page_token, filter_fingerprint, page_size
from nhm_platform.phone import InvalidPhoneNumber, Purpose, parse_phone_number
from nhm_platform.settings import ServerSettings, SettingsError, env_names, load_settings


@dataclass(frozen=True)
class DemoSettings(ServerSettings):
    upstream_target: str = "localhost:1"


def test_settings_prefer_service_variable_then_shared_then_default():
    env = {"NHM_DEMO_PORT": "7000", "NHM_PORT": "1", "NHM_MAX_WORKERS": "4", "NHM_MIGRATE_ON_START": "false"}
    settings = load_settings(DemoSettings, "demo", env)
    assert settings.port == 7000
    assert settings.max_workers == 4
    assert settings.migrate_on_start is False
    assert settings.upstream_target == "localhost:1"


def test_settings_reject_bad_values_naming_the_variable():
    with pytest.raises(SettingsError, match="NHM_DEMO_PORT"):
        load_settings(DemoSettings, "demo", {"NHM_DEMO_PORT": "eighty"})


def test_settings_list_every_variable_they_read():
    names = env_names(DemoSettings, "demo")
    assert names["NHM_DEMO_UPSTREAM_TARGET"] == "upstream_target"
    assert names["NHM_DATABASE_URL"] == "database_url"


def test_default_database_is_sqlite_under_data_dir(tmp_path):
    settings = ServerSettings(data_dir=str(tmp_path))
    assert settings.resolved_database_url("registry") == f"sqlite:///{tmp_path}/registry.db"


def test_page_tokens_round_trip_and_refuse_other_filters():
    token = encode_page_token(["+14155550123", 7], filter_fingerprint("a", 1))
    assert decode_page_token(token, filter_fingerprint("a", 1)) == ["+14155550123", 7]
    with pytest.raises(InvalidArgument, match="other filters"):
        decode_page_token(token, filter_fingerprint("b", 1))
    with pytest.raises(InvalidArgument, match="page_token"):
        decode_page_token("not-a-token!", filter_fingerprint("a", 1))
    assert decode_page_token("", "x") is None


def test_page_size_defaults_caps_and_refuses_negative():
    assert page_size(0) == 100
    assert page_size(5000) == 1000
    with pytest.raises(InvalidArgument):
        page_size(-1)


def test_update_mask_refuses_server_owned_fields():
    assert checked_paths(FieldMask(paths=["name", "policy.daily_cap_per_number"]), {"name"},
                         prefixes={"policy."}) == ["name", "policy.daily_cap_per_number"]
    with pytest.raises(InvalidArgument) as err:
        checked_paths(FieldMask(paths=["name", "tenant_id"]), {"name"})
    assert [v.field for v in err.value.violations] == ["update_mask.paths[1]"]
    with pytest.raises(InvalidArgument):
        checked_paths(FieldMask(), {"name"})


def test_phone_number_derives_location():
    number = parse_phone_number("+14158675309")
    assert (number.e164, number.country, number.area_code, number.exchange) == ("+14158675309", "US", "415", "867")
    assert number.region == "CA"
    assert number.time_zone == "America/Los_Angeles"
    assert parse_phone_number("+12127363100").region == "NY"
    assert parse_phone_number("+442079460018").time_zone == "Europe/London"


@pytest.mark.parametrize("raw, message", [
    ("", "required"),
    ("4158675309", "E.164"),
    ("+1 415 867 5309", "E.164"),
    ("+14158675309;ext=12", "E.164"),
    ("+1415867530\u200e9", "E.164"),
    ("+1\u2066" + "4158675309", "E.164"),
    ("+\uff114158675309", "E.164"),
    ("+1415", "E.164"),
    ("+14155550100", "fictional"),
    ("+19002345678", "premium-rate number cannot be an outbound caller ID"),
    ("+18002345678", "toll-free number cannot be an outbound caller ID"),
    ("+10005550123", "not a valid"),
])
def test_phone_number_refuses_what_cannot_place_calls(raw, message):
    with pytest.raises(InvalidPhoneNumber, match=message):
        parse_phone_number(raw)


def test_toll_free_destination_is_callable():
    assert parse_phone_number("+18002345678", Purpose.DESTINATION).e164 == "+18002345678"
    with pytest.raises(InvalidPhoneNumber, match="premium-rate"):
        parse_phone_number("+19002345678", Purpose.DESTINATION)


def test_ids_are_prefixed_and_unique():
    ids = {new_id("cmp") for _ in range(1000)}
    assert len(ids) == 1000 and all(i.startswith("cmp_") and len(i) == 30 for i in ids)
