"""Alias of ``openplatform_client.signing`` (see ``openplatform.client``)."""

from openplatform_client.signing import *  # noqa: F403
