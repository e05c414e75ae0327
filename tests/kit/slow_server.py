"""A server whose GetNumber takes a while: run as a process by test_processes.py to test SIGTERM."""

import sys
import time

from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm_platform.auth import StaticKeyResolver
from nhm_platform.logs import configure_logging
from nhm_platform.server import ServiceRegistration, create_server, serve_until_signalled
from nhm_platform.settings import ServerSettings


class SlowServicer(registry_pb2_grpc.RegistryServiceServicer):
    def GetNumber(self, request, context):
        time.sleep(1.5)
        return registry_pb2.GetNumberResponse(number=registry_pb2.Number(phone_number=request.phone_number))


def main() -> None:
    configure_logging("json", "info")
    registration = ServiceRegistration(
        ["nhm.registry.v1.RegistryService"],
        lambda s: registry_pb2_grpc.add_RegistryServiceServicer_to_server(SlowServicer(), s))
    running, port = create_server(ServerSettings(port=0), "slow", registration,
                                  StaticKeyResolver([("acme", sys.argv[1])]))
    print(f"NHM_SERVING slow {port}", flush=True)
    serve_until_signalled(running, grace=10)


if __name__ == "__main__":
    main()
