"""Email over SMTP (optionally STARTTLS and login)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from pydantic import Field, SecretStr

from alerts.notifiers.base import DeliveryError, Notifier, NotifierSettings, describe, title
from finpulse.contracts import Alert


class EmailConfig(NotifierSettings):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = "finpulse@localhost"
    to: list[str] = Field(min_length=1)
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None


class EmailNotifier(Notifier):
    type = "email"
    Config = EmailConfig

    def send(self, alert: Alert) -> None:
        cfg = self.config
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = title(alert), cfg.sender, ", ".join(cfg.to)
        msg["X-Finpulse-Alert-Id"] = alert.id
        msg.set_content(describe(alert))
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s) as smtp:
                if cfg.starttls:
                    smtp.starttls()
                if cfg.username and cfg.password:
                    smtp.login(cfg.username, cfg.password.get_secret_value())
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
