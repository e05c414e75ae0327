"""Test support shared by every test package: databases on both backends, real services on port 0, keys."""
