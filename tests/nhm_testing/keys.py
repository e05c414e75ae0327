"""Keys every test server accepts (static keys from settings)."""

TENANT_A = "acme"
TENANT_B = "globex"
TENANT_A_KEY = "nhm_test_acme_key_0123456789"
TENANT_B_KEY = "nhm_test_globex_key_0123456789"
ADMIN_KEY = "nhm_test_admin_key_0123456789"
SERVICE_KEY = "nhm_test_service_key_0123456789"

STATIC_KEY_SETTINGS = {
    "api_keys": f"{TENANT_A}={TENANT_A_KEY},{TENANT_B}={TENANT_B_KEY}",
    "admin_keys": ADMIN_KEY,
    "service_key": SERVICE_KEY,
}


def auth(key: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying a key."""
    return (("authorization", f"Bearer {key}"),)
