"""The one error family for "your input is wrong" (a file, a flag, a config value, a folder).

Every such error subclasses GroverError, and its message is the single line `grover` prints
(`grover: error: <message>`, exit code 2): the CLI catches this base, not a list of classes. A
leaf module, so any module may import it.
"""


class GroverError(ValueError):
    """Input a person can fix; the message names what to fix (file, line, field, flag)."""
