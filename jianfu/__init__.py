"""jianfu — the command line and configuration that tie the packages together.

``jianfu.cli`` is the console script; each subcommand lives beside the package that owns its
work (``crawler.command``, ``search.command``, ...) and is registered in ``jianfu.cli.COMMANDS``.
"""

__version__ = "0.1.0"
