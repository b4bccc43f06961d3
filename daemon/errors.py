"""The daemon's error tree: every edge translates third-party exceptions into these.

Bugs are left to crash loudly; these classes name the failures the daemon expects and
handles (bad settings, a label it rejects, an engine that went away, a config nginx
refuses).
"""


class DockyardError(Exception):
    """Base of every error the daemon raises on purpose."""


class SettingsError(DockyardError):
    """A setting has a value dockyard cannot run with."""

    def __init__(self, variable: str, value: str, allowed: str) -> None:
        super().__init__(f"{variable}={value!r} is invalid: {allowed}")
        self.variable = variable
        self.value = value
        self.allowed = allowed


class LabelError(DockyardError):
    """A container label has a value that must never reach nginx."""

    def __init__(self, label: str, value: str, reason: str) -> None:
        super().__init__(f"{label}={value!r}: {reason}")
        self.label = label
        self.value = value
        self.reason = reason


class EngineUnavailableError(DockyardError):
    """The Docker engine did not answer (stopped, restarting, socket missing)."""


class NginxError(DockyardError):
    """nginx could not be started, tested or reloaded."""


class ConfigRejectedError(NginxError):
    """``nginx -t`` refused a candidate config; ``message`` is what nginx said."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
