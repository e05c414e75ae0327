-- Each service owns its own database.
CREATE DATABASE nhm_registry;
CREATE DATABASE nhm_scoring;
CREATE DATABASE nhm_allocation;
CREATE DATABASE nhm_remediation;
