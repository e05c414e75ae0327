"""Retries of idempotent calls through gRPC's service config, and the request ids that keep them single."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from nhm_sdk import Client, ClientConfig, ResourceExhaustedError, RetryPolicy, UnavailableError
from nhm_sdk._channels import NOT_RETRIED, RATE_LIMITED, service_config
from nhm_testing.services import ServiceHandle

NUMBER = "+14158671234"


def test_a_write_whose_answer_was_lost_is_retried_and_applied_once(
        registry: ServiceHandle, make_client: Callable[..., Client],
        fault_proxy: Callable[[ServiceHandle], Any], client: Client) -> None:
    proxy = fault_proxy(registry)
    flaky = make_client(registry_target=proxy.address)
    flaky.get_tenant()  # connect first
    proxy.drop_next_responses(1)

    number = flaky.create_number(NUMBER, display_name="Once")

    assert proxy.kills == 1  # the first answer was lost after the server committed
    assert number.phone_number == NUMBER and number.display_name == "Once"
    assert [n.phone_number for n in client.list_numbers()] == [NUMBER]


def test_without_retries_the_lost_answer_surfaces_and_the_same_request_id_recovers_it(
        registry: ServiceHandle, make_client: Callable[..., Client],
        fault_proxy: Callable[[ServiceHandle], Any], client: Client) -> None:
    proxy = fault_proxy(registry)
    flaky = make_client(registry_target=proxy.address, retry=RetryPolicy.disabled())
    flaky.get_tenant()
    proxy.drop_next_responses(1)

    with pytest.raises(UnavailableError):
        flaky.create_number(NUMBER, request_id="create-once")
    assert client.get_number(NUMBER).phone_number == NUMBER  # committed all the same

    again = flaky.create_number(NUMBER, request_id="create-once")
    assert again.phone_number == NUMBER
    assert len(client.list_numbers().to_list()) == 1


def test_reads_are_retried_after_a_dropped_connection(
        registry: ServiceHandle, make_client: Callable[..., Client],
        fault_proxy: Callable[[ServiceHandle], Any]) -> None:
    proxy = fault_proxy(registry)
    flaky = make_client(registry_target=proxy.address)
    flaky.get_tenant()
    proxy.drop_next_responses(2)
    assert flaky.get_tenant().id == "acme"
    assert proxy.kills == 2


def test_an_unreachable_service_fails_within_the_deadline_after_bounded_retries(closed_port: int) -> None:
    started = time.monotonic()
    with Client(ClientConfig(target=f"127.0.0.1:{closed_port}", api_key="k")) as nobody, \
            pytest.raises(UnavailableError):
        nobody.get_tenant(timeout=5)
    assert time.monotonic() - started < 5


def test_service_config_retries_unavailable_only_and_never_streams_or_deletes() -> None:
    config = service_config(ClientConfig(target="x"))
    retrying, rate_limited, excluded = config["methodConfig"]
    assert retrying["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert rate_limited["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]
    assert {"service": "nhm.registry.v1.RegistryService", "method": "BatchCreateNumbers"} in rate_limited["name"]
    assert {"service": "nhm.allocation.v1.AllocationService"} not in rate_limited["name"]  # refusals are answers
    assert retrying["retryPolicy"]["maxAttempts"] == 5
    assert {"service": "nhm.allocation.v1.AllocationService"} in retrying["name"]
    assert "retryPolicy" not in excluded
    assert {"service": "nhm.scoring.v1.ScoringService", "method": "StreamCallOutcomes"} in excluded["name"]
    assert {"service": "nhm.remediation.v1.RemediationService", "method": "DeleteAlertSubscription"} \
        in excluded["name"]
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    json.dumps(config)
    with pytest.raises(ValueError, match="between 1"):
        RetryPolicy(max_attempts=6)
    assert "retryPolicy" not in json.dumps(service_config(ClientConfig(target="x", retry=RetryPolicy.disabled())))


def test_round_robin_spreads_calls_over_every_address(
        registry: ServiceHandle, make_client: Callable[..., Client],
        fault_proxy: Callable[[ServiceHandle], Any]) -> None:
    first, second = fault_proxy(registry), fault_proxy(registry)
    both = f"ipv4:127.0.0.1:{first.port},127.0.0.1:{second.port}"  # what dns:/// gives for a name with two
    spread = make_client(registry_target=both)
    for _ in range(10):
        spread.get_tenant()
    assert first.response_headers > 0 and second.response_headers > 0

    one, other = fault_proxy(registry), fault_proxy(registry)
    pinned = make_client(registry_target=f"ipv4:127.0.0.1:{one.port},127.0.0.1:{other.port}",
                         load_balancing="pick_first")
    for _ in range(10):
        pinned.get_tenant()
    assert (one.response_headers == 0) != (other.response_headers == 0)


def refusals() -> float:
    value = REGISTRY.get_sample_value("nhm_rpc_total", {
        "service": "registry", "method": "/nhm.registry.v1.RegistryService/BatchCreateNumbers",
        "code": "RESOURCE_EXHAUSTED"})
    return value or 0.0


def phones(first: int, count: int) -> list[str]:
    return [f"+1415867{n:04d}" for n in range(first, first + count)]


def test_an_import_over_the_tenant_item_budget_waits_as_long_as_the_server_says_and_goes_through(
        start_service: Callable[..., ServiceHandle], make_client: Callable[..., Client]) -> None:
    from nhm_registry.app import SPEC

    # 100 items saved up, then 200 a second: a call may overdraw, and the next one waits for the debt (0.5 s).
    registry = start_service(SPEC, tenant_bulk_item_rate=200.0, tenant_bulk_item_burst=100)
    client = make_client(registry_target=registry.address)
    refusals_before = refusals()
    started = time.monotonic()
    for first in range(0, 400, 100):
        assert len(client.import_numbers(phones(first, 100))) == 100
    elapsed = time.monotonic() - started

    assert len(client.list_numbers().to_list()) == 400  # each retried import applied once
    # The third and the fourth import were each refused once, then waited out the one before (0.5 s): gRPC's
    # own backoff (0.1 s at first) would have come back too soon, and been refused again.
    assert refusals() - refusals_before == 2
    assert elapsed >= 0.9

    strict = make_client(registry_target=registry.address, retry=RetryPolicy(wait_out_rate_limits=False))
    with pytest.raises(ResourceExhaustedError) as refused:
        strict.import_numbers(phones(400, 100))
    assert refused.value.reason == "RATE_LIMITED"
    assert refused.value.retry_after is not None and refused.value.retry_after.total_seconds() > 0
    assert len(client.list_numbers().to_list()) == 400


def test_a_rate_limit_wait_longer_than_the_deadline_is_not_waited(
        start_service: Callable[..., ServiceHandle], make_client: Callable[..., Client]) -> None:
    from nhm_registry.app import SPEC

    registry = start_service(SPEC, tenant_bulk_item_rate=10.0, tenant_bulk_item_burst=100)
    client = make_client(registry_target=registry.address)
    client.import_numbers(phones(0, 100))
    client.import_numbers(phones(100, 100))  # overdraws the budget by 100 items: 10 s at 10 a second
    started = time.monotonic()
    with pytest.raises(ResourceExhaustedError) as refused:
        client.import_numbers(phones(200, 100), timeout=2)
    assert time.monotonic() - started < 1.5  # refused at once, not DEADLINE_EXCEEDED after 2 s
    assert refused.value.retry_after is not None and refused.value.retry_after.total_seconds() > 5


def test_the_sdk_waits_out_exactly_the_calls_the_servers_rate_limit(
        start_service: Callable[..., ServiceHandle]) -> None:
    from nhm_registry.app import SPEC as REGISTRY
    from nhm_scoring.app import SPEC as SCORING

    for name, spec in (("registry", REGISTRY), ("scoring", SCORING)):
        served = start_service(spec, **({"follow_registry": False} if name == "scoring" else {}))
        limited = {path.rsplit("/", 1)[1] for path in served.running.registration.rate_limited_methods}
        assert limited - set(NOT_RETRIED[name]) == set(RATE_LIMITED[name]), name
