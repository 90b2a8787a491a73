"""Connection settings shared by the Kafka source and sink, passed through to aiokafka."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr


class KafkaConnection(BaseModel):
    bootstrap_servers: str | list[str] = Field(description="e.g. \"localhost:9092\" or a list")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(default="PLAINTEXT",
        description="how to reach the brokers")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER"] | None = Field(default=None,
        description="with SASL_*")
    sasl_plain_username: str | None = Field(default=None, description="with SASL")
    sasl_plain_password: SecretStr | None = Field(default=None, description="with SASL")
    ssl_cafile: str | None = Field(default=None, description="CA bundle to trust")
    ssl_certfile: str | None = Field(default=None, description="client certificate")
    ssl_keyfile: str | None = Field(default=None, description="client key")
    ssl_password: SecretStr | None = Field(default=None, description="the client key's password")
    ssl_check_hostname: bool = Field(default=True, description="check the broker's certificate names it")

    def client_kwargs(self, client_id: str) -> dict[str, Any]:
        kw: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers, "client_id": client_id,
                              "security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_plain_username
            if self.sasl_plain_password is not None:
                kw["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            ctx = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile,
                password=self.ssl_password.get_secret_value() if self.ssl_password else None)
            ctx.check_hostname = self.ssl_check_hostname
            kw["ssl_context"] = ctx
        return kw

    def servers_label(self) -> str:
        servers = self.bootstrap_servers
        return servers if isinstance(servers, str) else ",".join(servers)
