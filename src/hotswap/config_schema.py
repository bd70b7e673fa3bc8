"""Every configuration key: its type, default, meaning and when it takes effect.

This table drives the loader's key checks, `docs/configuration.md`
(scripts/gen-config-docs) and the tests that keep config.example.toml, the
docs and the dataclasses in config.py in step. Defaults are written as they
appear in TOML; a test checks that they equal the dataclass defaults.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.StrEnum):
    """How a value is written in TOML (the docs show these names)."""

    STRING = "string"
    PATH = "path"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DURATION = "duration"
    SIZE = "size"
    ADDRESS = "address"  # host:port, port 1-65535
    LISTEN_ADDRESS = "listen address"  # host:port, port 0-65535 (0: any free port)
    CHOICE = "choice"
    IMAGE = "image reference"
    PORT = "port"
    URL_PATH = "URL path"
    ENV = "table of strings"
    ROUTE = "image reference or table"
    NAMES = "array of names"  # host names or "*.example.com"
    STRINGS = "array of strings"
    VOLUMES = "array of volumes"
    NUMBER = "number"
    ORIGIN = "URL origin"
    OPTIONAL_LISTEN_ADDRESS = "listen address or empty"  # "" = off
    CIDRS = "array of CIDRs"  # ["10.0.0.0/8", "192.0.2.7"]
    CERTIFICATES = "array of tables"  # [{ cert = "...", key = "..." }]
    URL = "URL"


class Effect(enum.StrEnum):
    """When a changed value takes effect."""

    STARTUP = "start-up"  # read once when `hotswap serve` starts
    RELOAD = "reload"  # applied by `hotswap reload` / SIGHUP (new connections, new requests)
    NEXT_DEPLOY = "next deploy"  # used by deploys that start after a reload


@dataclass(frozen=True)
class KeySpec:
    """One configuration key. `default` is the TOML value (None: no default)."""

    name: str  # dotted key path; "<domain>" stands for a route's domain
    kind: Kind
    default: object
    meaning: str
    effect: Effect
    choices: tuple[str, ...] = ()
    positive: bool = False  # durations/integers that must be > 0

    @property
    def section(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def leaf(self) -> str:
        return self.name.rsplit(".", 1)[-1]


_S, _R, _D = Effect.STARTUP, Effect.RELOAD, Effect.NEXT_DEPLOY

SERVER_KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        "server.listen", Kind.LISTEN_ADDRESS, "0.0.0.0:8080", "Address the proxy listens on.", _S
    ),
    KeySpec(
        "server.admin_listen",
        Kind.LISTEN_ADDRESS,
        "127.0.0.1:9090",
        "Address of the admin API; a non-loopback address requires a token.",
        _S,
    ),
    KeySpec(
        "server.admin_token",
        Kind.STRING,
        "",
        'Bearer token the admin API requires ("" = none; loopback only).',
        _R,
    ),
    KeySpec(
        "server.admin_token_file",
        Kind.PATH,
        "",
        "File holding the admin token instead of admin_token "
        "(read at load time, relative to the config file).",
        _R,
    ),
    KeySpec(
        "server.max_connections",
        Kind.INTEGER,
        10000,
        "Client connections served at once; beyond this the proxy answers 503.",
        _S,
        positive=True,
    ),
    KeySpec(
        "server.max_body_size",
        Kind.SIZE,
        "100MB",
        "Largest request body; beyond this the proxy answers 413 (0 = unlimited).",
        _R,
    ),
    KeySpec(
        "server.header_timeout",
        Kind.DURATION,
        "10s",
        "Time a client has to send a complete request head (408 after it).",
        _R,
        positive=True,
    ),
    KeySpec(
        "server.idle_timeout",
        Kind.DURATION,
        "75s",
        "How long an idle keep-alive client connection stays open; also how long a "
        "client may stall mid-request (body: 408) or stop reading a response "
        "(closed).",
        _R,
        positive=True,
    ),
    KeySpec(
        "server.upstream_connect_timeout",
        Kind.DURATION,
        "5s",
        "Time to connect to a backend; beyond this the proxy answers 502.",
        _R,
        positive=True,
    ),
    KeySpec(
        "server.upstream_response_timeout",
        Kind.DURATION,
        "60s",
        "Time for a backend's response head to arrive, and the longest pause between "
        "two reads of its body; beyond this the proxy answers 504 (or closes the "
        "connection once the response has started).",
        _R,
        positive=True,
    ),
    KeySpec(
        "server.http_parser",
        Kind.CHOICE,
        "fast",
        "HTTP/1.1 codec: fast (llhttp via httptools, strict) or h11 (the pure-Python "
        "reference implementation); applies to new connections.",
        _R,
        choices=("fast", "h11"),
    ),
    KeySpec(
        "server.access_log",
        Kind.CHOICE,
        "text",
        "Access log on stderr, one line per request: text (key=value), json (one object "
        "per line), combined (Apache/nginx combined) or off.",
        _R,
        choices=("text", "json", "combined", "off"),
    ),
    KeySpec(
        "server.request_id",
        Kind.BOOLEAN,
        True,
        "Send each request upstream with an X-Request-Id (kept when a trusted proxy sent "
        "one) and log it.",
        _R,
    ),
    KeySpec(
        "server.trusted_proxies",
        Kind.CIDRS,
        [],
        "Addresses (CIDRs or single IPs) of proxies in front of hotswap, such as a load "
        "balancer: from these peers X-Forwarded-Proto and X-Forwarded-Host are kept and "
        "X-Forwarded-For is extended; from anyone else hotswap sets all three itself.",
        _R,
    ),
    KeySpec(
        "server.error_pages",
        Kind.PATH,
        "",
        "Directory with the proxy's own pages: 502.html, 503.html, 504.html and "
        'maintenance.html (any of them; "{message}" in maintenance.html is replaced '
        'by the maintenance message); relative to the config file; "" = built-in pages.',
        _R,
    ),
)

DOCKER_KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        "docker.host",
        Kind.STRING,
        "",
        'Docker engine URL, e.g. "unix:///var/run/docker.sock" '
        '("" = $DOCKER_HOST or the default socket).',
        _S,
    ),
    KeySpec(
        "docker.network_mode",
        Kind.CHOICE,
        "bridge",
        "bridge: publish the container port on 127.0.0.1:<ephemeral>; "
        "host: run on the host network with a free loopback port passed as $PORT "
        "(the route's port is not used).",
        _S,
        choices=("bridge", "host"),
    ),
)

DEPLOY_KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        "deploy.pull_policy",
        Kind.CHOICE,
        "if-tag-changed",
        "When a deploy pulls the image.",
        _D,
        choices=("always", "if-not-present", "if-tag-changed"),
    ),
    KeySpec(
        "deploy.readiness_mode",
        Kind.CHOICE,
        "auto",
        "How a new container is judged ready: auto (Docker health if the image has a "
        "healthcheck, else readiness_delay), docker-health, delay or http (GET health_path).",
        _D,
        choices=("auto", "docker-health", "delay", "http"),
    ),
    KeySpec(
        "deploy.health_timeout",
        Kind.DURATION,
        "90s",
        "Time a new container has to become healthy (docker-health and http readiness).",
        _D,
        positive=True,
    ),
    KeySpec(
        "deploy.readiness_delay",
        Kind.DURATION,
        "5s",
        "How long a new container must run without exiting to count as ready (delay "
        'readiness; an exit fails the deploy at once); "0s" = ready as soon as Docker '
        "reports it running.",
        _D,
    ),
    KeySpec(
        "deploy.drain_mode",
        Kind.CHOICE,
        "auto",
        "How the old container is drained after the switch: auto / inflight (wait until "
        "no request is in flight, at most drain_timeout) or delay (wait drain_delay).",
        _D,
        choices=("auto", "inflight", "delay"),
    ),
    KeySpec(
        "deploy.drain_timeout",
        Kind.DURATION,
        "30s",
        "Longest wait for in-flight requests on the old container; then a warning is "
        'logged and the deploy continues ("0s" = no wait: the old container is stopped '
        "right after the switch and stabilization, stop_timeout letting it finish).",
        _D,
    ),
    KeySpec(
        "deploy.drain_delay",
        Kind.DURATION,
        "2s",
        'Fixed wait of the delay drain mode ("0s" = none).',
        _D,
    ),
    KeySpec(
        "deploy.stop_timeout",
        Kind.DURATION,
        "10s",
        "Grace period of `docker stop` for the old container before it is killed.",
        _D,
    ),
    KeySpec(
        "deploy.watch_images",
        Kind.BOOLEAN,
        True,
        "Redeploy a route when its image tag starts pointing at a new image.",
        _R,
    ),
    KeySpec(
        "deploy.stabilization",
        Kind.DURATION,
        "2s",
        "After the switch: if the new container dies within this time, route back to the "
        "old one (still running while draining).",
        _D,
    ),
    KeySpec(
        "deploy.websocket_drain",
        Kind.CHOICE,
        "close",
        "close: at the switch, send open WebSockets on the old container a close frame "
        "1012 (service restart) so clients reconnect; wait: keep them until they close or "
        "drain_timeout, then close them the same way.",
        _D,
        choices=("close", "wait"),
    ),
)

TLS_KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        "tls.listen",
        Kind.OPTIONAL_LISTEN_ADDRESS,
        "",
        'HTTPS address, e.g. "0.0.0.0:443" ("" = no HTTPS).',
        _S,
    ),
    KeySpec(
        "tls.certificates",
        Kind.CERTIFICATES,
        [],
        'Certificate files: [{ cert = "fullchain.pem", key = "privkey.pem" }] (PEM; the '
        "server's certificate first, then the intermediates; relative to the config file). "
        "The names served are the certificate's own (subjectAltNames, wildcards included); "
        "the files are read again at reload.",
        _R,
    ),
    KeySpec(
        "tls.redirect_http",
        Kind.BOOLEAN,
        True,
        "Answer plain-HTTP requests for a domain that has a certificate with a 308 redirect "
        "to https (ACME challenges excepted).",
        _R,
    ),
    KeySpec(
        "tls.hsts",
        Kind.STRING,
        "",
        'Strict-Transport-Security value sent on HTTPS responses, e.g. "max-age=31536000" '
        '("" = none).',
        _R,
    ),
    KeySpec(
        "tls.handshake_timeout",
        Kind.DURATION,
        "10s",
        "Time a client has to complete the TLS handshake.",
        _R,
        positive=True,
    ),
    KeySpec(
        "tls.certs_dir",
        Kind.PATH,
        "",
        "Where issued certificates and the ACME account key are kept (0700); "
        '"" = /var/lib/hotswap/tls as root, else $XDG_STATE_HOME/hotswap/tls.',
        _S,
    ),
)

ACME_KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        "tls.acme.email",
        Kind.STRING,
        "",
        "Contact address of the ACME account; ACME is on when this is set (and tls.listen is).",
        _R,
    ),
    KeySpec(
        "tls.acme.directory",
        Kind.URL,
        "https://acme-v02.api.letsencrypt.org/directory",
        "ACME directory URL of the CA (Let's Encrypt's staging directory for trying it "
        "out: https://acme-staging-v02.api.letsencrypt.org/directory).",
        _R,
    ),
    KeySpec(
        "tls.acme.ca_bundle",
        Kind.PATH,
        "",
        "PEM file of the CA certificates to trust for the directory (a private or test CA; "
        '"" = the system\'s).',
        _R,
    ),
    KeySpec(
        "tls.acme.renew_before",
        Kind.DURATION,
        "30d",
        "Renew a certificate this long before it expires (when that is as long as the "
        "certificate's whole lifetime: once a third of it is left).",
        _R,
        positive=True,
    ),
)

ROUTE_KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        "routes.<domain>",
        Kind.ROUTE,
        None,
        "A domain served by a container hotswap deploys: an image reference (short "
        'form, e.g. "myapp:latest") or a table with the keys below (long form). A key '
        'with a path ("example.com/api") is a path route: the requests for the domain '
        "whose path is /api or under /api/ (the longest prefix wins).",
        _R,
    ),
    KeySpec(
        "routes.<domain>.image", Kind.IMAGE, None, "Image to run (required in the long form).", _D
    ),
    KeySpec(
        "routes.<domain>.port",
        Kind.PORT,
        None,
        "Container port to route to (default: the image's label hotswap.port, "
        "else its first EXPOSE).",
        _D,
    ),
    KeySpec(
        "routes.<domain>.env",
        Kind.ENV,
        {},
        "Environment variables of the container; values must be strings.",
        _D,
    ),
    KeySpec(
        "routes.<domain>.health_path",
        Kind.URL_PATH,
        "/up",
        'Path requested by readiness_mode "http"; on a path route it is under the '
        'route\'s prefix, as a client would ask for it ("/up" of example.com/api: '
        "/api/up, or /up with strip_prefix).",
        _D,
    ),
    KeySpec(
        "routes.<domain>.health_host",
        Kind.STRING,
        "",
        'Host header of the health request ("" = the domain).',
        _D,
    ),
    KeySpec(
        "routes.<domain>.strip_prefix",
        Kind.BOOLEAN,
        False,
        "Path routes only: send the request upstream without the route's prefix (the "
        "app sees /users for /api/users and / for /api, the query kept) and tell it the "
        "prefix in X-Forwarded-Prefix.",
        _R,
    ),
    KeySpec(
        "routes.<domain>.hosts",
        Kind.NAMES,
        [],
        'More names served by this container: exact names ("www.example.com") or '
        'wildcards ("*.example.com": one more label); an exact name wins over a wildcard, '
        "and a name belongs to one route.",
        _R,
    ),
    KeySpec(
        "routes.<domain>.env_file",
        Kind.PATH,
        "",
        "File of KEY=VALUE lines (docker's env-file syntax) read at each deploy "
        "(relative to the config file); env wins over it; values are never logged or "
        "shown.",
        _D,
    ),
    KeySpec(
        "routes.<domain>.volumes",
        Kind.VOLUMES,
        [],
        'Named volumes and bind mounts: "app-data:/data", "/srv/uploads:/uploads:ro" '
        "(bind-mount paths are absolute and must exist).",
        _D,
    ),
    KeySpec(
        "routes.<domain>.networks",
        Kind.STRINGS,
        [],
        "User-defined Docker networks the container joins (they must exist); needs "
        'docker.network_mode = "bridge".',
        _D,
    ),
    KeySpec(
        "routes.<domain>.command",
        Kind.STRINGS,
        [],
        'Overrides the image\'s CMD when not empty, e.g. ["bin/rails", "server"].',
        _D,
    ),
    KeySpec(
        "routes.<domain>.user",
        Kind.STRING,
        "",
        'Overrides the image\'s USER when set: "1000", "app" or "1000:1000".',
        _D,
    ),
    KeySpec(
        "routes.<domain>.memory",
        Kind.SIZE,
        "",
        'Memory limit of the container, e.g. "512MB" ("" = none; at least 6MiB). MB is '
        'decimal: Docker\'s --memory 512m is "512MiB".',
        _D,
    ),
    KeySpec(
        "routes.<domain>.cpus",
        Kind.NUMBER,
        0,
        "CPU limit of the container, e.g. 1.5 (0 = none).",
        _D,
    ),
    KeySpec(
        "routes.<domain>.restart",
        Kind.CHOICE,
        "unless-stopped",
        "Docker restart policy of the app container; hotswap routes to it again by itself "
        "once it runs again, and answers 502 at once while it is down.",
        _D,
        choices=("no", "on-failure", "unless-stopped", "always"),
    ),
    KeySpec(
        "routes.<domain>.tls",
        Kind.CHOICE,
        "auto",
        "auto: HTTPS with a loaded certificate that covers the name, else one from ACME "
        "when configured, else plain HTTP only; off: plain HTTP only.",
        _R,
        choices=("auto", "off"),
    ),
)

EXTERNAL_ROUTE_KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        "external_routes.<domain>",
        Kind.ADDRESS,
        None,
        'A domain served by a fixed "host:port" that hotswap does not manage.',
        _R,
    ),
)

REDIRECT_KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        "redirects.<domain>",
        Kind.ORIGIN,
        None,
        'A name (or "*.example.com") answered with 308 to an origin such as '
        '"https://app.example.com", the request\'s path and query kept.',
        _R,
    ),
)

SECTION_KEYS: dict[str, tuple[KeySpec, ...]] = {
    "server": SERVER_KEYS,
    "docker": DOCKER_KEYS,
    "deploy": DEPLOY_KEYS,
    "tls": TLS_KEYS,
    "tls.acme": ACME_KEYS,  # a table inside [tls]
}
SCHEMA: tuple[KeySpec, ...] = (
    *SERVER_KEYS,
    *DOCKER_KEYS,
    *DEPLOY_KEYS,
    *TLS_KEYS,
    *ACME_KEYS,
    *ROUTE_KEYS,
    *EXTERNAL_ROUTE_KEYS,
    *REDIRECT_KEYS,
)
SECTIONS: tuple[str, ...] = (
    "server",
    "docker",
    "deploy",
    "tls",
    "routes",
    "external_routes",
    "redirects",
)
