"""split: cut a source CID into frame-exact video-only segments plus its audio.

A python3-http handler: JSON in, JSON out, CIDs only (never media bytes).
"""

from typing import Any

from kinoit import load_settings
from kinoit.errors import KinoitError
from kinoit.stages import split
from kinoit.stages.http import Reply, error_reply, json_reply, read_json


def handle(event: Any, context: Any) -> Reply:
    """POST a JSON request; reply with the stage's JSON result or a JSON error."""
    if event.method != "POST":
        return json_reply({"error": "MethodNotAllowed", "message": "use POST"}, 405)
    try:
        settings = load_settings()
        request = split.parse_request(read_json(event, settings.max_body_bytes))
        return json_reply(split.run(request, settings))
    except KinoitError as exc:
        return error_reply(exc)
