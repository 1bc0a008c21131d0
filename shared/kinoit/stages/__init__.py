"""The per-function work: fetch input CIDs from the store, call the media library,
add the outputs to the store, return small JSON.

Each stage module has ``parse_request(body) -> Request`` (validation, pure) and
``run(request, settings) -> dict`` (the work, in a scratch directory that is
always removed). The handlers in ``functions/`` are thin adapters over them.
"""
