"""orchestrate-tick: turn the cron-connector's call into orchestrate's sweep.

The cron-connector POSTs an empty body to a function's root, without
credentials. This function answers it by calling ``POST /tick`` on orchestrate
through the gateway with the API token, so expired leases are re-dispatched
even when no other request reaches orchestrate.
"""

from typing import Any

import requests
from kinoit.config import load_settings
from kinoit.errors import KinoitError, UnavailableError
from kinoit.stages.http import Reply, error_reply

TOKEN_SECRET = "kinoit-api-token"


def handle(event: Any, context: Any) -> Reply:
    """Relay one tick to orchestrate; reply with orchestrate's answer."""
    try:
        settings = load_settings()
        token = settings.secret(TOKEN_SECRET)
        if not token:
            raise KinoitError(f"secret {TOKEN_SECRET} is missing in {settings.secrets_dir}")
        url = f"{settings.gateway_url.rstrip('/')}/function/orchestrate/tick"
        try:
            reply = requests.post(
                url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=settings.http_timeout_seconds,
            )
        except requests.RequestException as exc:
            raise UnavailableError(f"gateway: POST {url} failed: {exc}") from exc
        content_type = reply.headers.get("Content-Type", "application/json")
        return reply.text, reply.status_code, {"Content-Type": content_type}
    except KinoitError as exc:
        return error_reply(exc)
