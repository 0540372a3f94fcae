"""Settings: one typed object, read from the environment (and an optional .env file)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakehouse.uri import join


class Settings(BaseSettings):
    """Where the lakehouse keeps its tables and how it reaches them.

    ``LAKEHOUSE_WAREHOUSE`` is the root of all tables (``s3://bucket/prefix`` or a local
    path); a table lives at ``<warehouse>/<layer>/<table>``. The standard AWS variables
    configure boto3 and delta-rs alike.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    warehouse: str = Field(
        default="", validation_alias=AliasChoices("LAKEHOUSE_WAREHOUSE", "warehouse")
    )
    """Root URI of all tables; empty means "start an embedded moto S3" (demo only)."""

    landing: str = Field(default="", validation_alias=AliasChoices("LAKEHOUSE_LANDING", "landing"))
    """Root URI of the landing area; defaults to ``<warehouse>/landing``."""

    aws_endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ENDPOINT_URL", "aws_endpoint_url")
    )
    """S3-compatible endpoint (moto, MinIO, R2); unset for AWS itself."""

    aws_access_key_id: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ACCESS_KEY_ID", "aws_access_key_id")
    )
    """Access key id (a secret: never logged)."""

    aws_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
    )
    """Secret access key (a secret: never logged)."""

    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION", "aws_region"),
    )
    """Region of the bucket."""

    s3_verify_tls: bool = Field(
        default=True, validation_alias=AliasChoices("LAKEHOUSE_S3_VERIFY_TLS", "s3_verify_tls")
    )
    """Verify the S3 endpoint's TLS certificate (boto3, delta-rs, DuckDB); ``false`` only for a self-signed test endpoint."""

    s3_allow_http: bool = Field(
        default=False,
        validation_alias=AliasChoices("LAKEHOUSE_S3_ALLOW_HTTP", "AWS_ALLOW_HTTP", "s3_allow_http"),
    )
    """Allow a plain ``http://`` endpoint that is not on loopback (credentials and data in clear text)."""

    task_runner: Literal["sequential", "threads", "dask"] = Field(
        default="sequential", validation_alias=AliasChoices("LAKEHOUSE_TASK_RUNNER", "task_runner")
    )
    """How a run's tasks fan out per dataset and model: one at a time, in threads, or on Dask."""

    dask_address: str | None = Field(
        default=None, validation_alias=AliasChoices("LAKEHOUSE_DASK_ADDRESS", "dask_address")
    )
    """A Dask scheduler (``tcp://host:8786``) for ``task_runner=dask``; unset: a local cluster per run."""

    @property
    def landing_root(self) -> str:
        """Where files land: ``LAKEHOUSE_LANDING``, else ``<warehouse>/landing``."""
        return self.landing or join(self.warehouse, "landing")

    def table_uri(self, layer: str, name: str) -> str:
        """``<warehouse>/<layer>/<table>``."""
        return join(self.warehouse, layer, name)
