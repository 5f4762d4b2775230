"""The admin API under /api/manage/ (SPEC §10, web/manage_api.py, docs/api.md "Admin API")."""

from __future__ import annotations

from typing import Any

from openplatform.models import REGISTRABLE_SCOPES
from openplatform.services.accounts import MAX_PASSWORD, MIN_PASSWORD, ROLES
from openplatform.services.admin import MAX_GRACE_SECONDS
from openplatform.services.directory_input import CONTACT_MAX, NAME_MAX
from openplatform.services.manage import CATALOGUE_FIELDS
from openplatform.web.manage_api import MAX_TIME
from tools.openapi.components import UNIX, Schema, obj, page_of, query, ref, text
from tools.openapi.operations import operation, params, success

TAG = "Admin API"
SECURITY = [{"admin_key": []}]
# 403: a --metrics-only key on any operation; 429: the key's rate limit (web/manage_api.admitted)
READ_ERRORS = (400, 401, 403, 404, 429, 500, 503)
WRITE_ERRORS = (400, 401, 403, 404, 409, 429, 500, 503)
BOUND = (
    " A key bound to an SPE (`admin-key create --xspe`) sees and changes only that SPE: objects of another SPE "
    "answer 404 / 40401, exactly like objects that do not exist."
)
PLATFORM_ONLY = " Only a key of the whole platform: a key bound to an SPE gets 403 / 40301 access_denied."
DEVELOPERS_OWN = " Only to a key of the whole platform: a key bound to an SPE reads the catalogue without it."

XSPE = "spe_5f0c7a9e1b2d3c4a"
CUSTOMER_ID = "cus_8d1e4b7a2c9f0e36"
APP_ID = "3f2a9c1d7e5b4a6f8c0d2e4f6a8b0c1d"
SECRET = "9b7e1c4f2a6d8e0b3c5a7f9d1e2b4c6a8f0e2d4c6b8a0f1e3d5c7b9a1f2e4d6c"
INSTALLATION_ID = "ins_2b4d6f8a0c1e3a5c"
USER_ID = "usr_7a9c1e3b5d7f9a1c"
KEY_ID = "key_4c6e8a0b2d4f6a8c"
NOW = 1796000000

SPE_EXAMPLE = {"xspe": XSPE, "name": "Acme Hosting", "created_at": NOW}
CUSTOMER_EXAMPLE = {
    "customer_id": CUSTOMER_ID, "xspe": XSPE, "name": "Shop One", "contact": "ops@shop.example",
    "status": "active", "created_at": NOW, "updated_at": NOW, "version": 1,
}  # fmt: skip
APP_EXAMPLE = {
    "app_id": APP_ID, "name": "Shop Analytics", "host_url": "https://analytics.example.com/", "status": "active",
    "scopes": ["customer:read"], "ip_whitelist": [], "webhook_url": None, "owner_id": None, "created_at": NOW,
}  # fmt: skip
INSTALLATION_EXAMPLE = {
    "installation_id": INSTALLATION_ID, "app_id": APP_ID, "xspe": XSPE, "customer_id": CUSTOMER_ID,
    "installed_at": NOW, "uninstalled_at": None,
}  # fmt: skip
USER_EXAMPLE = {
    "user_id": USER_ID, "email": "portal-admin@acme.example", "role": "spe-admin", "xspe": XSPE,
    "status": "active", "created_at": NOW,
}  # fmt: skip
AUDIT_EXAMPLE = {
    "id": 42, "at": NOW + 0.25, "event": "app.installed", "app_id": APP_ID, "xspe": XSPE,
    "customer_id": CUSTOMER_ID, "ip": None, "occurrences": 1, "detail": {"key_id": KEY_ID, "via": "admin_api"},
}  # fmt: skip

NULLABLE_TEXT = {"type": ["string", "null"]}
STRINGS = {"type": "array", "items": {"type": "string"}, "maxItems": 100}
SCOPES_IN = {
    "oneOf": [{"type": "array", "items": {"enum": list(REGISTRABLE_SCOPES)}, "maxItems": 100}, {"type": "string"}],
    "description": "Scopes the app may request besides install_login: a list, or one string of space- or "
    "comma-separated scopes.",
}
WHITELIST_IN = {
    "oneOf": [STRINGS, {"type": "string"}],
    "description": "IP addresses or CIDR ranges the app calls from (empty: any); a list or one separated string.",
}

SCHEMAS: dict[str, Schema] = {
    "Spe": obj(
        {
            "xspe": text("The SPE's id (`xspe` everywhere in the API)."),
            "name": text("Display name."),
            "created_at": UNIX,
        }
    ),  # fmt: skip
    "SpePage": page_of("Spe"),
    "App": obj(
        {
            "app_id": text("APP_ID: 32 lower-case hex characters."),
            "name": text("Display name.", NAME_MAX),
            "host_url": text("The app's entrance URL; redirect_uri must share its host."),
            "status": {"enum": ["active", "suspended"]},
            "scopes": {"type": "array", "items": {"enum": list(REGISTRABLE_SCOPES)}},
            "ip_whitelist": {**STRINGS, "description": "Addresses the app calls from (empty: any)." + DEVELOPERS_OWN},
            "webhook_url": {
                **NULLABLE_TEXT,
                "description": "Where install and uninstall events go (or null)." + DEVELOPERS_OWN,
            },
            "owner_id": {
                **NULLABLE_TEXT,
                "description": "The developer account whose console shows the app." + DEVELOPERS_OWN,
            },
            "created_at": UNIX,
        },
        required=list(CATALOGUE_FIELDS),
    ),
    "AppPage": page_of("App"),
    "Installation": obj(
        {
            "installation_id": text("Installation id."),
            "app_id": text("The app installed."),
            "xspe": text("The SPE."),
            "customer_id": {
                **NULLABLE_TEXT,
                "description": "The customer; null for an installation for the whole SPE.",
            },
            "installed_at": UNIX,
            "uninstalled_at": {"type": ["integer", "null"], "description": "UNIX seconds; null while installed."},
        }
    ),
    "InstallationPage": page_of("Installation"),
    "User": obj(
        {
            "user_id": text("Account id."),
            "email": text("Sign-in e-mail address (lower-case)."),
            "role": {"enum": list(ROLES)},
            "xspe": {**NULLABLE_TEXT, "description": "The SPE an spe-admin administers; null for other roles."},
            "status": {"enum": ["active", "disabled"]},
            "created_at": UNIX,
        }
    ),
    "UserPage": page_of("User"),
    "AuditEvent": obj(
        {
            "id": {"type": "integer", "description": "Increasing: a later event has a larger id."},
            "at": {"type": "number", "description": "UNIX time in seconds (with fractions)."},
            "event": text("What happened, e.g. token.issued, app.installed, admin_key.used (docs/events.md)."),
            "app_id": NULLABLE_TEXT,
            "xspe": NULLABLE_TEXT,
            "customer_id": NULLABLE_TEXT,
            "ip": NULLABLE_TEXT,
            "occurrences": {"type": "integer", "minimum": 1, "description": "Identical events counted in one row."},
            "detail": {
                "type": "object",
                "description": "The event's other fields; changes made through the admin "
                "API carry `key_id` (never the key) and `via: admin_api`.",
            },
        }
    ),  # fmt: skip
    "AuditPage": page_of("AuditEvent"),
    "SecretRotated": obj(
        {
            "app_id": text("APP_ID."),
            "secret": text("The new secret, shown this once."),
            "grace_seconds": {"type": "integer", "description": "How long the previous secret keeps working."},
        }
    ),
    # request bodies
    "SpeCreate": obj({"name": text("1 to 200 characters.", NAME_MAX)}),
    "ManageCustomerCreate": obj(
        {
            "xspe": text("The SPE; a key bound to an SPE may leave it out (its own)."),
            "name": text("1 to 200 characters.", NAME_MAX),
            "contact": text("Optional contact (e-mail, phone).", CONTACT_MAX),
        },
        ["name"],
    ),
    "AppCreate": obj(
        {
            "name": text("1 to 200 characters.", NAME_MAX),
            "host_url": text("https URL (plain http only for localhost), at most 2048 characters."),
            "scopes": SCOPES_IN,
            "ip_whitelist": WHITELIST_IN,
            "webhook_url": text("Optional: where install and uninstall notifications go; no private addresses."),
            "owner": text(
                "Optional: the e-mail of the developer account whose console shows the app (an account "
                "of another role is refused: `400` naming `owner`)."
            ),
        },
        ["name", "host_url"],
    ),
    "AppUpdate": obj(
        {
            "name": text("1 to 200 characters.", NAME_MAX),
            "host_url": text("https URL (plain http only for localhost)."),
            "scopes": SCOPES_IN,
            "ip_whitelist": WHITELIST_IN,
            "webhook_url": text('Where notifications go; `""` removes it.'),
        },
        [],
    ),
    "SecretRotation": obj(
        {
            "grace_seconds": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_GRACE_SECONDS,
                "default": 0,
                "description": "How long the old secret keeps working (0: it stops now).",
            },
        },
        [],
    ),  # fmt: skip
    "InstallationCreate": obj(
        {
            "app_id": text("The app to install."),
            "customer_id": text("Install for this customer…"),
            "xspe": text("…or for the whole SPE (give exactly one of the two)."),
        },
        ["app_id"],
    ),
    "UserCreate": obj(
        {
            "email": text("Sign-in e-mail address.", 320),
            "role": {"enum": list(ROLES), "description": "A key bound to an SPE creates only spe-admin accounts."},
            "password": text(f"{MIN_PASSWORD} to {MAX_PASSWORD} characters.", MAX_PASSWORD, minLength=MIN_PASSWORD),
            "xspe": text("The SPE an spe-admin administers (a bound key: its own)."),
        },
        ["email", "role", "password"],
    ),
    "PasswordSet": obj(
        {"password": text(f"{MIN_PASSWORD} to {MAX_PASSWORD} characters.", MAX_PASSWORD, minLength=MIN_PASSWORD)}
    ),
}


def path_param(name: str, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


PARAMETERS: dict[str, Schema] = {
    "manage_xspe": path_param("xspe", "The SPE's id."),
    "manage_app_id": path_param("app_id", "APP_ID."),
    "installation_id": path_param("installation_id", "The installation's id."),
    "user_id": path_param("user_id", "The account's id."),
    "filter_xspe": query("xspe", {"type": "string", "maxLength": 200}, "Only this SPE (a bound key: its own)."),
    "filter_app_id": query("app_id", {"type": "string", "maxLength": 200}, "Only this app."),
    "filter_owner": query(
        "owner",
        {"type": "string", "maxLength": 200},
        "Only the apps of this developer (e-mail); a key bound to an SPE gets 403.",
    ),
    "filter_event": query(
        "event",
        {"type": "string", "maxLength": 200},
        "Only this event, e.g. app.installed: a name of docs/events.md (another: `400`).",
    ),
    "since": query("since", {"type": "number", "minimum": 0, "maximum": MAX_TIME}, "From this UNIX time (seconds)."),
    "until": query("until", {"type": "number", "minimum": 0, "maximum": MAX_TIME}, "Up to this UNIX time (seconds)."),
}


def json_body(schema: str, example: dict[str, Any]) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": ref(schema), "example": example}}}


def manage(
    op_id: str, summary: str, description: str, result: Schema, example: Any,
    errors: tuple[int, ...] = READ_ERRORS, **extra: Any,
) -> Schema:  # fmt: skip
    """An admin API operation: admin key, envelope, no-store, the bound key's reach."""
    ok = success(result, ("Cache-Control",))
    ok["content"]["application/json"]["example"] = {"code": 0, "msg": "success", "result": example}
    return operation(f"manage.{op_id}", TAG, summary, description, {"200": ok}, errors, security=SECURITY, **extra)


def page(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The example of a first page (``services.directory.Page.result``)."""
    return {"items": items, "total": len(items), "page": 1, "page_size": 20}


def customer_page(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {**page(items), "xspe": XSPE}


PATHS: dict[str, Schema] = {
    "/api/manage/spes": {
        "get": manage("spes.list", "List SPEs", "Every SPE, oldest first, in pages (a bound key: its own)." + BOUND,
                      ref("SpePage"), page([SPE_EXAMPLE]), parameters=params("page", "page_size")),
        "post": manage("spes.create", "Create an SPE", "Like `openplatform spe create`." + PLATFORM_ONLY,
                       ref("Spe"), SPE_EXAMPLE, requestBody=json_body("SpeCreate", {"name": "Acme Hosting"})),
    },
    "/api/manage/spes/{xspe}": {
        "parameters": params("manage_xspe"),
        "get": manage("spe.get", "Show an SPE", "One SPE." + BOUND, ref("Spe"), SPE_EXAMPLE),
    },
    "/api/manage/customers": {
        "get": manage(
            "customers.list", "List an SPE's customers",
            "The customers of one SPE (`xspe`, required for a key of the whole platform), oldest first, in pages "
            "like `GET /api/spe/customers`; `status` and `name` (a case-insensitive substring) narrow the list."
            + BOUND,
            ref("CustomerPage"), customer_page([CUSTOMER_EXAMPLE]),
            parameters=params("filter_xspe", "customer_status", "name", "page", "page_size"),
        ),
        "post": manage(
            "customers.create", "Create a customer", "Like `openplatform customer create`." + BOUND,
            ref("Customer"), CUSTOMER_EXAMPLE,
            requestBody=json_body("ManageCustomerCreate", {"xspe": XSPE, "name": "Shop One",
                                                           "contact": "ops@shop.example"}),
        ),
    },
    "/api/manage/customers/{customer_id}": {
        "parameters": params("customer_id"),
        "get": manage("customer.get", "Show a customer", "One customer, its version as the ETag." + BOUND,
                      ref("Customer"), CUSTOMER_EXAMPLE),
        "put": manage(
            "customer.update", "Update a customer",
            "Only the fields given change; the version goes up by one. Send `version` or `If-Match` to refuse "
            "overwriting someone else's change (409 / 40901). Disabling (`status: disabled`) stops the customer's "
            "codes and tokens at once; enabling lets the unexpired ones work again." + BOUND,
            ref("Customer"), {**CUSTOMER_EXAMPLE, "name": "Shop One Ltd", "version": 2}, WRITE_ERRORS,
            requestBody=json_body("CustomerUpdate", {"name": "Shop One Ltd", "version": 1}),
            parameters=params("if_match"),
        ),
        "delete": manage(
            "customer.delete", "Delete a customer",
            "Deletes the customer and its sites, ends the installations made for it (webhooks notified) and "
            "revokes its codes and tokens at once." + BOUND,
            ref("CustomerDeleted"), {"customer_id": CUSTOMER_ID, "deleted": True},
        ),
    },
    "/api/manage/customers/{customer_id}/disable": {
        "parameters": params("customer_id"),
        "post": manage("customer.disable", "Disable a customer",
                       "Its codes and tokens stop working at once (SPEC §8); no body." + BOUND,
                       ref("Customer"), {**CUSTOMER_EXAMPLE, "status": "disabled", "version": 2}),
    },
    "/api/manage/customers/{customer_id}/enable": {
        "parameters": params("customer_id"),
        "post": manage("customer.enable", "Enable a customer", "Its unexpired tokens work again; no body." + BOUND,
                       ref("Customer"), {**CUSTOMER_EXAMPLE, "version": 3}),
    },
    "/api/manage/apps": {
        "get": manage(
            "apps.list", "List apps",
            "Every app, oldest first, in pages, or one developer's (`owner`, only with a key of the whole platform); "
            "never "
            "a secret. A bound key reads the catalogue (its portal installs apps from it): each app without "
            "`webhook_url`, `ip_whitelist` and `owner_id`.",
            ref("AppPage"), page([APP_EXAMPLE]), parameters=params("filter_owner", "page", "page_size"),
        ),
        "post": manage(
            "apps.create", "Register an app",
            "Like `openplatform app create`: the answer carries the `secret`, shown this once." + PLATFORM_ONLY,
            obj({**SCHEMAS["App"]["properties"], "secret": text("Shown this once; stored only as a keyed hash "
                 "and encrypted under the server key.")}),
            {**APP_EXAMPLE, "secret": SECRET},
            requestBody=json_body("AppCreate", {"name": "Shop Analytics", "host_url": "https://analytics.example.com/",
                                                "scopes": ["customer:read"]}),
        ),
    },
    "/api/manage/apps/{app_id}": {
        "parameters": params("manage_app_id"),
        "get": manage("app.get", "Show an app", "One app, never its secret; to a key bound to an SPE without "
                      "`webhook_url`, `ip_whitelist` and `owner_id`.", ref("App"), APP_EXAMPLE),
        "put": manage(
            "app.update", "Change an app",
            "Only the fields given change; tokens see the change at once (a narrower whitelist or fewer scopes "
            "apply to the next request)." + PLATFORM_ONLY,
            ref("App"), {**APP_EXAMPLE, "ip_whitelist": ["203.0.113.0/24"]},
            requestBody=json_body("AppUpdate", {"ip_whitelist": ["203.0.113.0/24"]}),
        ),
    },
    "/api/manage/apps/{app_id}/rotate-secret": {
        "parameters": params("manage_app_id"),
        "post": manage(
            "app.rotate_secret", "Rotate an app's secret",
            "A new secret, shown this once; the previous one keeps working `grace_seconds` (default 0: it stops "
            "now). Rotating again ends an earlier grace period." + PLATFORM_ONLY,
            ref("SecretRotated"), {"app_id": APP_ID, "secret": SECRET, "grace_seconds": 3600},
            requestBody={**json_body("SecretRotation", {"grace_seconds": 3600}), "required": False},
        ),
    },
    "/api/manage/apps/{app_id}/suspend": {
        "parameters": params("manage_app_id"),
        "post": manage("app.suspend", "Suspend an app",
                       "Its tokens and codes stop working at once on every node; no body." + PLATFORM_ONLY,
                       ref("App"), {**APP_EXAMPLE, "status": "suspended"}),
    },
    "/api/manage/apps/{app_id}/resume": {
        "parameters": params("manage_app_id"),
        "post": manage("app.resume", "Resume an app", "Its unexpired tokens work again; no body." + PLATFORM_ONLY,
                       ref("App"), APP_EXAMPLE),
    },
    "/api/manage/installations": {
        "get": manage(
            "installations.list", "List installations",
            "Of one app (`app_id`), in one SPE (`xspe`), or both, oldest first, in pages; uninstalled ones too "
            "(with `uninstalled_at`). "
            "A key of the whole platform gives at least one of the two; an unknown app or SPE is `404`." + BOUND,
            ref("InstallationPage"), page([INSTALLATION_EXAMPLE]),
            parameters=params("filter_app_id", "filter_xspe", "page", "page_size"),
        ),
        "post": manage(
            "installations.create", "Install an app",
            "For one customer (`customer_id`) or the whole SPE (`xspe`): installing is consenting (SPEC §1). "
            "Installing again what is installed answers the existing installation." + BOUND,
            ref("Installation"), INSTALLATION_EXAMPLE,
            requestBody=json_body("InstallationCreate", {"app_id": APP_ID, "customer_id": CUSTOMER_ID}),
        ),
    },
    "/api/manage/installations/{installation_id}": {
        "parameters": params("installation_id"),
        "delete": manage(
            "installation.delete", "Uninstall",
            "Every code and token of the installation stops working at once (SPEC §8); the app's webhook gets "
            "the uninstall notification. An installation already uninstalled answers 404." + BOUND,
            ref("Installation"), {**INSTALLATION_EXAMPLE, "uninstalled_at": NOW + 60},
        ),
    },
    "/api/manage/users": {
        "get": manage("users.list", "List accounts",
                      "The accounts of the screens, oldest first, in pages (a bound key: its SPE's spe-admins)."
                      + BOUND, ref("UserPage"), page([USER_EXAMPLE]), parameters=params("page", "page_size")),
        "post": manage(
            "users.create", "Create an account",
            "Like `openplatform user create`. A bound key creates only spe-admin accounts of its SPE (another "
            "role: 403)." + BOUND,
            ref("User"), USER_EXAMPLE,
            requestBody=json_body("UserCreate", {"email": "portal-admin@acme.example", "role": "spe-admin",
                                                 "xspe": XSPE, "password": "correct horse battery"}),
        ),
    },
    "/api/manage/users/{user_id}/password": {
        "parameters": params("user_id"),
        "post": manage(
            "user.password", "Set an account's password",
            "Its sessions end and its sign-in lock-outs are lifted (SPEC §9)." + BOUND,
            ref("User"), USER_EXAMPLE,
            requestBody=json_body("PasswordSet", {"password": "another long passphrase"}),
        ),
    },
    "/api/manage/audit-events": {
        "get": manage(
            "audit_events.list", "List audit events",
            "Newest first, in pages; filters combine. Every admin API request is itself an `admin_key.used` "
            "event with the key id, the operation and the answer's code." + BOUND,
            ref("AuditPage"), page([AUDIT_EXAMPLE]),
            parameters=params("filter_app_id", "filter_xspe", "filter_event", "since", "until", "page", "page_size"),
        ),
    },
}  # fmt: skip
