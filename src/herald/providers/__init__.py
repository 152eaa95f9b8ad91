"""Providers: one module per service, each implementing :class:`herald.providers.base.Provider`."""
