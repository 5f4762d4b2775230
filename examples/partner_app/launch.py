"""``python -m partner_app.launch --xspe X [--customer-id C]``: print a fresh signed launch URL.

The SPE admin portal's "Open app" does this for real; signing needs only the
app secret, so during development the app can sign its own launches. The
URL is valid for five minutes (core/signing.py LAUNCH_MAX_AGE).
"""

from __future__ import annotations

import argparse
from urllib.parse import urlencode

from openplatform_client.signing import sign_launch

from .config import Config


def launch_url(config: Config, xspe: str, customer_id: str | None) -> str:
    params = sign_launch(config.app_secret, config.app_id, xspe, customer_id)
    return f"{config.base_url}/?{urlencode(params)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xspe", required=True)
    parser.add_argument("--customer-id", default=None, help="omit for an SPE-wide launch")
    args = parser.parse_args()
    print(launch_url(Config.from_env(), args.xspe, args.customer_id))


if __name__ == "__main__":
    main()
