"""The one base class of errors a user can cause and fix (a bad config, a missing or
damaged file, a diverging run). The CLI prints their message as one line, without a
traceback (`vitprobe --debug ...` shows it); anything else is a bug and keeps its traceback."""


class VitprobeError(Exception):
    """A problem with the user's input or files; the message names the cause and the fix."""


class ConfigError(VitprobeError, ValueError):
    """A config value is wrong; the message names the key and what is allowed."""
