"""WSGI entry point of the Keystone API for gunicorn.

Keystone parses sys.argv with oslo.config when the application is built,
which rejects gunicorn's own options, so the arguments are reset before the
import. Keystone finds its configuration file through OS_KEYSTONE_CONFIG_DIR
and OS_KEYSTONE_CONFIG_FILES.
"""

import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
