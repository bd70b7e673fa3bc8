"""HTTPS: certificates (files and ACME), SNI selection, TLS handshakes."""
