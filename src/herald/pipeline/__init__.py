"""Accept-time stages: validate, idempotency, prepare the stored message, persist."""
