"""kinoit: distributed, content-addressed video transcoding on OpenFaaS."""

from kinoit.config import Settings, load_settings
from kinoit.errors import KinoitError

__all__ = ["KinoitError", "Settings", "__version__", "load_settings"]
__version__ = "0.1.0"
