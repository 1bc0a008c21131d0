"""The local gateway of the embedded default: the OpenFaaS routes on one machine.

- :mod:`kinoit.gateway.event`: the python3-http event/context and result conventions.
- :mod:`kinoit.gateway.functions`: loading ``functions/<name>/handler.py`` by path.
- :mod:`kinoit.gateway.app`: the Flask app (``/function/<name>``, ``/async-function/<name>``).
- :mod:`kinoit.gateway.worker`: RQ workers that run async calls and POST the callbacks.
- :mod:`kinoit.gateway.redis_server`: the private redis-server under ``$KINOIT_HOME``.
- :mod:`kinoit.gateway.dev`: :class:`DevStack`, everything ``kinoit dev`` runs.
"""
