"""Settings from the environment and `.env`: built once at start, passed in, never read at import.

Every setting here has a line in `.env.example` (a test checks that the two agree).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Addresses that listen on every interface of the machine.
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
_HTTP_URL = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?$")


class Settings(BaseSettings):
    """Everything paperbot can be configured with; each field is read from its env variable."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

    # Storage
    db_path: Path = Field(Path("data/paperbot.db"), validation_alias="PAPERBOT_DB")

    # Sources
    hf_api_url: str = Field("https://huggingface.co/api", validation_alias="PAPERBOT_HF_API_URL")
    arxiv_api_url: str = Field(
        "https://export.arxiv.org/api/query", validation_alias="PAPERBOT_ARXIV_API_URL"
    )
    arxiv_categories: str = Field(
        "cs.LG,cs.CL,cs.CV,cs.AI", validation_alias="PAPERBOT_ARXIV_CATEGORIES"
    )
    ingest_interval_minutes: int = Field(
        60, ge=5, le=24 * 60, validation_alias="PAPERBOT_INGEST_INTERVAL_MINUTES"
    )
    http_timeout_seconds: float = Field(
        20.0, gt=0, le=300, validation_alias="PAPERBOT_HTTP_TIMEOUT_SECONDS"
    )

    # Semantic matching (the optional `semantic` extra): auto uses it when installed.
    semantic: Literal["auto", "off"] = Field("auto", validation_alias="PAPERBOT_SEMANTIC")

    # Logging
    log_level: str = Field("INFO", validation_alias="PAPERBOT_LOG_LEVEL")
    log_format: Literal["text", "json"] = Field("text", validation_alias="PAPERBOT_LOG_FORMAT")

    # Slack
    slack_bot_token: SecretStr | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_app_token: SecretStr | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_api_url: str | None = Field(None, validation_alias="SLACK_API_URL")
    # OAuth mode: many workspaces install the app; their tokens are kept in the database.
    slack_client_id: str | None = Field(None, validation_alias="SLACK_CLIENT_ID")
    slack_client_secret: SecretStr | None = Field(None, validation_alias="SLACK_CLIENT_SECRET")
    # Slack allows apps outside the Marketplace 1 conversations.history call a minute (2025).
    slack_history_interval_seconds: float = Field(
        60.0, ge=0, le=3600, validation_alias="SLACK_HISTORY_INTERVAL_SECONDS"
    )

    # Discord
    discord_token: SecretStr | None = Field(None, validation_alias="DISCORD_TOKEN")
    discord_guild_id: int | None = Field(None, validation_alias="DISCORD_GUILD_ID")

    # HTTP endpoint: /healthz, /metrics, and Slack's HTTP mode
    http_host: str = Field("127.0.0.1", validation_alias="PAPERBOT_HTTP_HOST")
    http_port: int = Field(3000, ge=0, le=65535, validation_alias="PAPERBOT_HTTP_PORT")
    # Where other machines reach that endpoint (a reverse proxy's https address): the base of
    # the feed addresses shown in chat. Unset: the endpoint's own address (`local_url`).
    public_url: str | None = Field(None, validation_alias="PAPERBOT_PUBLIC_URL")

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value.strip().rstrip("/")
        if not _HTTP_URL.match(url):
            raise ValueError("PAPERBOT_PUBLIC_URL must be an http:// or https:// address")
        return url

    def secret_values(self) -> list[str]:
        """The values of every secret setting that is set (to keep them out of logs)."""
        values = [getattr(self, name) for name, f in Settings.model_fields.items()]
        return [v.get_secret_value() for v in values if isinstance(v, SecretStr)]

    @property
    def local_url(self) -> str:
        """Where this machine reaches the HTTP endpoint (a wildcard address through loopback)."""
        host = "127.0.0.1" if self.http_host in WILDCARD_HOSTS else self.http_host
        if ":" in host:  # an IPv6 address goes in brackets in a URL
            host = f"[{host}]"
        return f"http://{host}:{self.http_port}"

    @property
    def public_base_url(self) -> str:
        """The base of the addresses feed readers use: PAPERBOT_PUBLIC_URL, else `local_url`."""
        return self.public_url or self.local_url

    @property
    def categories(self) -> tuple[str, ...]:
        """The arXiv categories to follow, as a tuple."""
        return tuple(c.strip() for c in self.arxiv_categories.split(",") if c.strip())


def env_names() -> set[str]:
    """The environment variable of every setting (for `.env.example` and the docs)."""
    return {str(f.validation_alias) for f in Settings.model_fields.values()}


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment, `.env` and explicit overrides (by field name)."""
    return Settings(**overrides)  # type: ignore[arg-type]
