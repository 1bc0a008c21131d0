"""Unit tests of the checksum handler (python3-http style): the request checks
every stage handler must pass, for its input field ``segment``."""

from kinoit.local.testing import StageHandlerContract


class TestChecksumHandler(StageHandlerContract):
    test_file = __file__
    cid_field = "segment"
