"""Alias of ``openplatform_client.tokens`` (see ``openplatform.client``)."""

from openplatform_client.tokens import *  # noqa: F403
