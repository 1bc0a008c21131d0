"""Unit tests of the transcode-segment handler (python3-http style): the request checks
every stage handler must pass, for its input field ``segment``."""

from kinoit.local.testing import StageHandlerContract


class TestTranscodeSegmentHandler(StageHandlerContract):
    test_file = __file__
    cid_field = "segment"
