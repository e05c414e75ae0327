"""nhm's allocation service: AllocateNumber: a safe, local, explainable caller ID for every call."""
