from nhm_allocation.models import metadata
from nhm_platform.migrations import run_env

run_env(metadata)
