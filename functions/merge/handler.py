"""merge: join every rung's segments, put the audio back, package HLS and a storyboard.

A python3-http handler: JSON in, JSON out, CIDs only (never media bytes).
"""

from typing import Any

from kinoit.stages import merge
from kinoit.stages.http import Reply, serve_stage


def handle(event: Any, context: Any) -> Reply:
    """POST a JSON request; reply with the stage's JSON result or a JSON error."""
    return serve_stage(event, merge)
