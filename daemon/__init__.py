"""dockyard's daemon: Docker labels in, a live nginx reverse proxy out.

The flow, one module a step: ``sources`` (Docker state and events) wake ``trigger``
(debounce, single flight), ``labels`` and ``routing`` turn containers into a frozen
routing table, ``rendering`` turns that table into nginx config text, ``nginx`` (the
edge) validates, swaps and reloads it, and ``reconcile`` ties one pass together.
``running`` owns the loop and the process lifecycle; ``cli`` is the entry point.
"""

__version__ = "0.1.0"
