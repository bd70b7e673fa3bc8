"""HTTPS: certificates (files and ACME), SNI selection, TLS handshakes.

certificate.py  a certificate chain and its key: PEM checks, names, expiry
names.py        server names against certificate names (RFC 6125 wildcards)
selection.py    which certificate answers a server name (exact before wildcard)
context.py      SSLContexts: one per certificate, the listener's picks by SNI
live.py         the certificate set new handshakes use, swapped in one step
handshake.py    accept_tls_socket: sniff plain HTTP, handshake, say why one failed
challenges.py   HTTP-01 tokens of pending orders and the answer to the CA
redirect.py     the https URL of a plain-HTTP request
plan.py         what the config asks: files, names switched off, ACME orders
schedule.py     renewal time, back-off, Retry-After
store.py        issued certificates and the account key on disk (certs_dir)
acme_client.py  one ACME conversation on the `acme` package (blocking)
issuer.py       one certificate from the CA, from Trio (worker threads)
manager.py      TlsManager: the running side; what the proxy calls

Nothing is imported here: `hotswap config check` needs certificate.py, not the
ACME client; import the module you need.
"""
