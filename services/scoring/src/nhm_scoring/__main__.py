"""Run the scoring service: ``python -m nhm_scoring [serve|migrate]``."""

import sys

from nhm_platform.service import main as run
from nhm_scoring.app import SPEC


def main() -> None:
    sys.exit(run(SPEC))


if __name__ == "__main__":
    main()
