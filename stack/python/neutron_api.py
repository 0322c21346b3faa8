"""WSGI entry point of the Neutron API for gunicorn.

Importing neutron.wsgi.api builds the application, and Neutron then parses
sys.argv with oslo.config, which rejects gunicorn's own options. The
arguments are reset before that import. Neutron finds its configuration
files through OS_NEUTRON_CONFIG_DIR and OS_NEUTRON_CONFIG_FILES.
"""

import sys

sys.argv = sys.argv[:1]

from neutron.wsgi.api import application  # noqa: E402,F401
