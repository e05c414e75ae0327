"""Run the allocation service: ``python -m nhm_allocation [serve|migrate]``."""

import sys

from nhm_allocation.app import SPEC
from nhm_platform.service import main as run


def main() -> None:
    sys.exit(run(SPEC))


if __name__ == "__main__":
    main()
