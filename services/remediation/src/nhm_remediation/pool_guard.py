"""Guarding a campaign's pool: how many of its numbers are out (resting or quarantined) if one more goes."""

from __future__ import annotations

from dataclasses import dataclass

from nhm_remediation.domain import PoolAlert


@dataclass(frozen=True)
class CampaignPool:
    campaign_id: str
    # Numbers in the campaign (retired ones excluded).
    total: int
    # Of them, resting or quarantined now (or about to be, by an open case), the number in question excluded.
    out: int


def check(pools: list[CampaignPool], threshold: float) -> list[PoolAlert]:
    """A PoolAlert for each campaign that would have more than ``threshold`` of its numbers out."""
    alerts = []
    for pool in pools:
        if pool.total <= 0:
            continue
        out = min(pool.out + 1, pool.total)
        share = out / pool.total
        if share > threshold:
            alerts.append(PoolAlert(
                campaign_id=pool.campaign_id, resting_share=round(share, 4), threshold=threshold,
                message=(f"campaign {pool.campaign_id}: {out} of {pool.total} numbers ({share:.0%}) resting or "
                         f"quarantined, above the {threshold:.0%} limit")))
    return alerts
