from nhm_platform.migrations import run_env
from nhm_remediation.models import metadata

run_env(metadata)
