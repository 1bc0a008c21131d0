"""The embedded default on one machine: the local gateway (the OpenFaaS routes),
RQ workers standing in for the queue-worker, a private redis-server, and
``kinoit run``. Depends on :mod:`kinoit.service` and the stages, never the
reverse; its third-party needs (RQ) are the ``local`` extra, which the function
images do not install.

- :mod:`kinoit.local.event`: the python3-http event/context and result conventions.
- :mod:`kinoit.local.functions`: loading ``functions/<name>/handler.py`` by path.
- :mod:`kinoit.local.app`: the Flask app (``/function/<name>``, ``/async-function/<name>``).
- :mod:`kinoit.local.worker`: RQ workers that run async calls and POST the callbacks.
- :mod:`kinoit.local.redis_server`: the private redis-server under ``$KINOIT_HOME``.
- :mod:`kinoit.local.dev`: :class:`DevStack`, everything ``kinoit dev`` runs.
- :mod:`kinoit.local.run`: ``kinoit run`` and the local readers of status and progress.
- :mod:`kinoit.local.testing`: calling a handler as the gateway does (handler tests).
"""
