"""dockyard's ACME client and crash-safe JSON certificate store.

The flow, one module a step: ``planning`` (pure: which host names need an order, a
renewal or an ARI look-up, and when to look again) → ``orders`` (HTTP-01 through
certbot's ``acme``, called from the daemon's worker thread) → ``store`` (the JSON file:
atomic 0600 writes, refusals, the writer lock). ``records`` holds the frozen values and
their JSON form, ``keys`` makes keys, CSRs and self-signed certificates; ``errors`` is the
package's error tree. The daemon asks this package for
certificates; this package never imports ``daemon``.
"""
