"""``openplatform.client``: the name SPEC §6 gives the Python SDK, kept as an alias.

The SDK is its own distribution, ``openplatform-client`` (clients/python),
importable as ``openplatform_client``; this package re-exports it so code written
against ``openplatform.client`` keeps working (the same objects: ``AppClient``
here *is* ``openplatform_client.AppClient``). New code imports ``openplatform_client``.
"""

from openplatform_client import *  # noqa: F403
from openplatform_client import __all__ as __all__
from openplatform_client import __version__ as __version__
