"""nhm's number health dashboard: an internal web tool on top of the Python SDK."""
