"""The two consoles every command writes to: results on stdout, progress and errors on stderr."""

from rich.console import Console

# soft_wrap: never break a message (a path, a URL, an error) across lines; let the terminal wrap.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
