"""Alert channels: signed webhooks (HTTP POST) and e-mail through an SMTP server (stdlib only)."""

from __future__ import annotations

import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any

from nhm_remediation import alerting
from nhm_remediation.alert_repository import ClaimedDelivery
from nhm_remediation.domain import AlertChannel


class DeliveryError(Exception):
    """One attempt failed; the message goes into the delivery log."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery: the signed body is never re-sent somewhere else."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects())


class WebhookSender:
    def __init__(self, timeout: float) -> None:
        self._timeout = timeout

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310 - checked URL
        try:
            with _opener.open(request, timeout=self._timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryError(f"could not reach the webhook: {getattr(exc, 'reason', exc)}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"HTTP {status}")


class EmailSender:
    def __init__(self, host: str, port: int, sender: str, timeout: float) -> None:
        self._host, self._port, self._sender, self._timeout = host, port, sender, timeout

    def send(self, to: str, subject: str, text: str, headers: dict[str, str]) -> None:
        if not self._host:
            raise DeliveryError("no SMTP server configured (set NHM_REMEDIATION_SMTP_HOST)")
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        for name, value in headers.items():
            message[name] = value
        message.set_content(text)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP: {exc}") from None


class Notifier:
    """Sends one claimed delivery on its subscription's channel."""

    def __init__(self, webhooks: WebhookSender, email: EmailSender) -> None:
        self._webhooks = webhooks
        self._email = email

    def send(self, claimed: ClaimedDelivery) -> None:
        sub = claimed.subscription
        alert = claimed.alert
        if sub is None:
            raise DeliveryError("the subscription was deleted")
        body = alert.body.encode()
        headers = {
            alerting.ALERT_ID_HEADER: alert.id,
            "Idempotency-Key": alert.id,
            "X-Nhm-Delivery-Id": claimed.delivery.id,
            "X-Nhm-Alert-Kind": alert.kind.value,
        }
        if sub.channel is AlertChannel.WEBHOOK:
            headers["Content-Type"] = "application/json"
            headers["User-Agent"] = "nhm-remediation-alerts/1"
            headers[alerting.SIGNATURE_HEADER] = alerting.sign(sub.signing_secret, body)
            self._webhooks.send(sub.target, body, headers)
        else:
            headers["Message-ID"] = f"<{alert.id}@nhm>"
            self._email.send(sub.target, alerting.email_subject(alert), f"{alert.summary}\n\n{alert.body}\n",
                             headers)
