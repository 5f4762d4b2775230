"""Alias of ``openplatform_client.errors`` (see ``openplatform.client``)."""

from openplatform_client.errors import *  # noqa: F403
