"""Run the remediation service: ``python -m nhm_remediation [serve|migrate]``."""

import sys

from nhm_platform.service import main as run
from nhm_remediation.app import SPEC


def main() -> None:
    sys.exit(run(SPEC))


if __name__ == "__main__":
    main()
