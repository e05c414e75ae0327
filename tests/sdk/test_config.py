"""Client configuration from the environment and the values the SDK accepts."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from nhm.registry.v1 import registry_pb2 as reg
from nhm.scoring.v1 import scoring_pb2 as sco
from nhm_sdk import ClientConfig, TlsConfig, disposition_for, enum_number, to_duration, to_timestamp
from nhm_sdk._channels import base_metadata, merge_metadata
from nhm_sdk._convert import to_message


def test_from_env_reads_targets_key_tenant_and_tls(tmp_path: Path) -> None:
    config = ClientConfig.from_env({"NHM_TARGET": "nhm.internal:443", "NHM_ALLOCATION_TARGET": "dns:///alloc:50053",
                                    "NHM_API_KEY": "k1", "NHM_TENANT_ID": "acme", "NHM_TLS_CA_FILE": "ca.pem"},
                                   credentials_file=tmp_path / "none.json")
    assert config.target_for("registry") == "nhm.internal:443"
    assert config.target_for("allocation") == "dns:///alloc:50053"
    assert (config.api_key, config.tenant_id) == ("k1", "acme")
    assert config.tls == TlsConfig(ca_file="ca.pem")
    assert base_metadata(config) == (("authorization", "Bearer k1"), ("x-nhm-tenant-id", "acme"))


def test_without_settings_it_finds_make_run(tmp_path: Path) -> None:
    creds = tmp_path / "dev-credentials.json"
    creds.write_text(json.dumps({"tenant_id": "dev", "api_key": "nhm_dev"}))
    config = ClientConfig.from_env({}, credentials_file=creds)
    assert config.api_key == "nhm_dev" and config.tls is None
    assert [config.target_for(s) for s in ("registry", "scoring", "allocation", "remediation")] == [
        "localhost:50051", "localhost:50052", "localhost:50053", "localhost:50054"]
    assert ClientConfig.from_env({}, credentials_file=tmp_path / "missing.json").api_key is None
    with pytest.raises(ValueError, match="no address for the scoring service"):
        ClientConfig(registry_target="x").target_for("scoring")


def test_per_call_metadata_and_request_ids() -> None:
    base = base_metadata(ClientConfig(target="x", api_key="k", metadata=[("X-Trace", "t1")]))
    merged = merge_metadata(base, [("authorization", "Bearer other")], "req-1")
    assert ("authorization", "Bearer other") in merged and ("authorization", "Bearer k") not in merged
    assert ("x-trace", "t1") in merged and ("x-request-id", "req-1") in merged


def test_plain_values_become_messages() -> None:
    policy = to_message(reg.CallingPolicy, {"calling_window_start": "00:00", "sticky_ttl": dt.timedelta(days=2),
                                            "local_presence": {"tiers": ["area_code", "ANY"]}})
    assert policy.HasField("calling_window_start")  # present, though 00:00 is all zeros
    assert policy.sticky_ttl.seconds == 2 * 86400 and len(policy.local_presence.tiers) == 2
    with pytest.raises(TypeError, match="has no field 'daily_cap'"):
        to_message(reg.CallingPolicy, {"daily_cap": 5})
    with pytest.raises(ValueError, match="naive datetime"):
        to_timestamp(dt.datetime(2026, 1, 1))
    assert to_timestamp("2026-01-05T15:00:00Z").seconds == 1767625200
    assert to_duration(1.5).nanos == 500_000_000
    assert enum_number(sco.CallDisposition.DESCRIPTOR, "voicemail") == sco.CALL_DISPOSITION_VOICEMAIL


@pytest.mark.parametrize(("answered", "sip", "expected"), [
    (True, 200, sco.CALL_DISPOSITION_ANSWERED), (False, 608, sco.CALL_DISPOSITION_BLOCKED),
    (False, 607, sco.CALL_DISPOSITION_REJECTED), (False, 603, sco.CALL_DISPOSITION_REJECTED),
    (False, 486, sco.CALL_DISPOSITION_BUSY), (False, 480, sco.CALL_DISPOSITION_NO_ANSWER),
    (False, 503, sco.CALL_DISPOSITION_FAILED)])
def test_sip_codes_map_to_dispositions(answered: bool, sip: int, expected: int) -> None:
    assert disposition_for(answered, sip) == expected
