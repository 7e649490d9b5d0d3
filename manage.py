#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

Two things on top of Django's own: a request for help (``manage.py``, ``manage.py help [COMMAND]``,
``manage.py COMMAND --help``) works in any environment, and a setting that stops start-up is one
line on stderr, not a traceback.

Help loads the settings only to find the commands: it reads no secret and writes nothing. So when
``DJANGO_SECRET_KEY`` or ``AK_SECRETS_KEY`` is unset (a deployment's shell without them, DEBUG
off), a help request gets a random, throwaway value of each for this process alone; every other
command still stops start-up without them (``akplatform/settings.py``).
"""

import os
import secrets
import sys

HELP_WORDS = {"help", "-h", "--help"}
THROWAWAY_SECRETS = ("DJANGO_SECRET_KEY", "AK_SECRETS_KEY")


def asks_for_help(argv: list[str]) -> bool:
    """Whether the command line only asks for help (``--`` ends what is read as options)."""
    args = argv[1:]
    if "--" in args:
        args = args[: args.index("--")]
    return not args or args[0] in HELP_WORDS or bool({"-h", "--help"} & set(args[1:]))


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akplatform.settings")
    if asks_for_help(sys.argv):
        for name in THROWAWAY_SECRETS:
            if not os.environ.get(name, "").strip():
                os.environ[name] = secrets.token_urlsafe(48)
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:  # a setting: the message names it, a traceback adds nothing
        sys.exit(f"ImproperlyConfigured: {exc}")


if __name__ == "__main__":
    main()
