"""Developer tools: benchmarks, evaluations, simulators, demo data and test encoders.

They drive the runtime packages (ingest, stream, model, alerts, dashboard) from outside and
are never imported by them at module level, so the package map shows what runs in production
and the worker image leaves this tree out (``.dockerignore``). The ``finpulse`` commands that
run them (``bench``, ``alerts evaluate``, the demo) load them through
:func:`finpulse.context.tool`, which says in one line when a slim install lacks them.
"""
