"""The one base class of errors a user can cause and fix (a bad config, a missing or
damaged file, a diverging run). The CLI prints their message as one line, without a
traceback (`vitprobe --debug ...` shows it); anything else is a bug and keeps its traceback."""

import re


def first_line(exc: BaseException) -> str:
    """The first sentence of an exception's first line, to quote inside a one-line message
    (torch's, pyarrow's and jsonschema's messages run over many lines)."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return re.split(r"(?<=\.)\s", lines[0].strip(), maxsplit=1)[0].rstrip(".")


class VitprobeError(Exception):
    """A problem with the user's input or files; the message names the cause and the fix."""


class ConfigError(VitprobeError, ValueError):
    """A config value is wrong; the message names the key and what is allowed."""
