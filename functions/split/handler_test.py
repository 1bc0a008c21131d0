"""Unit tests of the split handler (python3-http style): the request checks
every stage handler must pass, for its input field ``source``."""

from kinoit.local.testing import StageHandlerContract


class TestSplitHandler(StageHandlerContract):
    test_file = __file__
    cid_field = "source"
