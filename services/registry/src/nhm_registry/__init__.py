"""nhm's registry service: Outbound numbers, campaigns, tenants and keys, and each number's lifecycle."""
