"""gRPC edge of the scoring service: proto <-> domain only."""

from __future__ import annotations

from nhm.scoring.v1 import scoring_pb2_grpc


class ScoringServiceServicer(scoring_pb2_grpc.ScoringServiceServicer):
    """Every RPC answers UNIMPLEMENTED until the scoring issue lands."""
