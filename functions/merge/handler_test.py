"""Unit tests of the merge handler (python3-http style): the request checks
every stage handler must pass, for its input field ``plan``."""

from kinoit.local.testing import StageHandlerContract


class TestMergeHandler(StageHandlerContract):
    test_file = __file__
    cid_field = "plan"
