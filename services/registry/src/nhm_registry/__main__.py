"""Run the registry service: ``python -m nhm_registry [serve|migrate]``."""

import sys

from nhm_platform.service import main as run
from nhm_registry.app import SPEC


def main() -> None:
    sys.exit(run(SPEC))


if __name__ == "__main__":
    main()
