"""dockyard's ACME client and crash-safe JSON certificate store.

Planned flow (the ACME issue): planning (which hosts need certificates) → orders
(HTTP-01 through certbot's ``acme`` in a worker thread) → store (atomic JSON writes).
The daemon asks this package for certificates; this package never imports ``daemon``.
"""
