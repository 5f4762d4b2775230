"""Alias of ``openplatform_client.models`` (see ``openplatform.client``)."""

from openplatform_client.models import *  # noqa: F403
