"""nhm's remediation service: Tracked cases that take a flagged number back to healthy."""
