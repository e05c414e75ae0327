"""The shared server kit of nhm's services.

Every service builds on these modules and nothing here knows about any one service:
settings and logging, the gRPC server with its interceptors, errors, authentication, the database,
migrations, change feeds, pagination, idempotency and the clock.
"""
