"""The admin HTTP API (server.py) and the CLI's client for it (client.py).

Nothing is re-exported here on purpose: the CLI imports admin.client without
paying for the server's imports (trio, h11, prometheus_client).
"""
