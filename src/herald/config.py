"""Settings: ``HERALD_*`` environment variables, then an optional ``herald.toml``, then defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from herald.domain.backoff import RetryPolicy
from herald.domain.network import parse_networks
from herald.domain.webhook_signing import parse_secrets


def _toml_path() -> Path:
    return Path(os.environ.get("HERALD_CONFIG", "herald.toml"))


class Settings(BaseSettings):
    """Every setting has a ``HERALD_<NAME>`` variable and a ``<name>`` key in herald.toml."""

    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore")

    database_url: str = "sqlite:///herald.db"

    # Provider URLs per channel, comma-separated = failover order; unset = capture.
    email: str | None = None
    sms: str | None = None
    push: str | None = None
    chat: str | None = None
    webhook: str | None = None

    api_keys: str | None = Field(default=None, repr=False)

    lease_seconds: float = Field(default=60.0, gt=0)
    retry_max_attempts: int = Field(default=5, ge=1)
    retry_initial_delay: float = Field(default=1.0, ge=0)
    retry_multiplier: float = Field(default=2.0, ge=1)
    retry_max_delay: float = Field(default=3600.0, ge=0)
    max_lag: float = Field(default=86400.0, gt=0)

    # Worker tuning.
    worker_concurrency: int = Field(default=64, ge=1)
    claim_batch_size: int = Field(default=256, ge=1, le=5000)
    poll_interval: float = Field(default=0.5, gt=0)
    shutdown_timeout: float = Field(default=30.0, ge=0)

    # Input limits.
    max_message_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_request_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    max_recipients: int = Field(default=50, ge=1)

    # Domain of generated Message-IDs when the sender's cannot be used.
    message_id_domain: str | None = None

    # SMS input: numbers without a country code are read in this region (ISO 3166 code).
    sms_default_region: str | None = Field(default=None, min_length=2, max_length=2)
    sms_max_segments: int = Field(default=10, ge=1, le=255)

    # Webhooks: the default Standard Webhooks secret, and networks exempt from the SSRF guard.
    webhook_secret: str | None = Field(default=None, repr=False)
    webhook_allowed_networks: str | None = None

    # Where providers' callbacks reach Herald (e.g. Twilio's StatusCallback), and how long
    # a report on a message Herald has not recorded sending is kept waiting for it.
    public_url: str | None = None
    pending_reports_retention: float = Field(default=86400.0, gt=0)
    # Global rate limits across processes; in-process limits without it.
    redis_url: str | None = Field(default=None, repr=False)

    # Templates: a folder of file templates (default: ./templates when it exists), rescanned
    # on change when reload is on (development); how long another process's template
    # update may take to be seen here; and whether caller-supplied HTML is sanitized.
    templates_dir: Path | None = None
    templates_reload: bool = False
    templates_cache_seconds: float = Field(default=5.0, ge=0)
    sanitize_html: bool = False

    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"

    log_level: str = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    access_log: bool = False

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0].lower()
        if scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_toml_path()),
        )

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.retry_max_attempts,
            initial_delay=self.retry_initial_delay,
            multiplier=self.retry_multiplier,
            max_delay=self.retry_max_delay,
        )

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str | None) -> str | None:
        parse_networks(value)  # raises ValueError naming the bad CIDR
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secrets(cls, value: str | None) -> str | None:
        if value is not None:
            parse_secrets(value)  # raises ValueError saying what is wrong, never the secret
        return value

    @property
    def templates_path(self) -> Path | None:
        """The templates folder to load, if any."""
        if self.templates_dir is not None:
            return self.templates_dir
        default = Path("templates")
        return default if default.is_dir() else None

    @property
    def api_key_list(self) -> list[str]:
        if not self.api_keys:
            return []
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]
