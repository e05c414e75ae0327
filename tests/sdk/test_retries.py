"""Retries of idempotent calls through gRPC's service config, and the request ids that keep them single."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from nhm_sdk import Client, ClientConfig, RetryPolicy, UnavailableError
from nhm_sdk._channels import service_config
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
    retrying, excluded = config["methodConfig"]
    assert retrying["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
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
