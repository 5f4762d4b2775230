"""What each management UI route does, for the document (SPEC §4).

The routes themselves come from ``openplatform.web.ui.routes``; a route missing
here stops the build, so a new page cannot go undocumented.
"""

from __future__ import annotations

UI_SUMMARIES: dict[tuple[str, str], str] = {
    ("/", "get"): "Send each role to its home page (or to /login)",
    ("/login", "get"): "Sign-in form",
    ("/login", "post"): "Sign in (e-mail and password; lock-out after repeated failures)",
    ("/logout", "post"): "Sign out (ends the session)",
    ("/console", "get"): "Developer console: my apps",
    ("/console/apps/new", "get"): "Form to register an app",
    ("/console/apps/new", "post"): "Register an app (the secret is shown once)",
    ("/console/apps/{app_id}", "get"): "One app: settings, installations, recent audit events",
    ("/console/apps/{app_id}/edit", "get"): "Form to edit an app",
    ("/console/apps/{app_id}/edit", "post"): "Save an app's settings",
    ("/console/apps/{app_id}/rotate", "get"): "Confirm a secret rotation (?grace_seconds=0, 3600 or 86400)",
    ("/console/apps/{app_id}/rotate", "post"): "Rotate the secret (optional grace period for the old one)",
    ("/console/apps/{app_id}/status", "get"): "Confirm a suspension (?status=suspended)",
    ("/console/apps/{app_id}/status", "post"): "Suspend or resume an app",
    ("/console/apps/{app_id}/secret", "get"): "Show a just-created secret, once",
    ("/console/apps/{app_id}/webhooks/{delivery_id}/resend", "post"): "Send a webhook notification again",
    ("/portal", "get"): "SPE portal: the SPE's customers (search, pages)",
    ("/portal/customers/new", "get"): "Form to add a customer",
    ("/portal/customers/new", "post"): "Add a customer",
    ("/portal/customers/{customer_id}", "get"): "One customer: details and installed apps",
    ("/portal/customers/{customer_id}/edit", "get"): "Form to edit a customer",
    ("/portal/customers/{customer_id}/edit", "post"): "Save a customer (refused if someone else saved meanwhile)",
    ("/portal/customers/{customer_id}/status", "get"): "Confirm disabling a customer (?status=disabled)",
    ("/portal/customers/{customer_id}/status", "post"): "Enable or disable a customer",
    ("/portal/apps", "get"): "Apps installed SPE-wide, and the catalogue",
    ("/portal/install", "post"): "Install an app for a customer or the whole SPE",
    ("/portal/uninstall", "get"): "Confirm an uninstall",
    ("/portal/uninstall", "post"): "Uninstall (revokes the installation's codes and tokens)",
    ("/portal/launch", "post"): "Open an app: signed launch to its entrance URL",
    ("/admin", "get"): "Platform admin: SPEs",
    ("/admin", "post"): "Create an SPE",
    ("/admin/users", "get"): "User accounts",
    ("/admin/users", "post"): "Create a user account",
    ("/admin/users/{user_id}/status", "get"): "Confirm disabling an account (?status=disabled)",
    ("/admin/users/{user_id}/status", "post"): "Enable or disable an account",
    ("/admin/users/{user_id}/unlock", "post"): "Unlock an account after failed sign-ins",
    ("/admin/users/{user_id}/password", "get"): "Set a user's password: the form",
    (
        "/admin/users/{user_id}/password",
        "post",
    ): "Set a user's password (with a confirmation step; ends their sessions)",
    ("/account/password", "get"): "Change your password: the form",
    ("/account/password", "post"): "Change your password (current password required; ends your other sessions)",
    ("/admin/apps", "get"): "Every app (suspend any)",
}


def ui_summary(path: str, method: str) -> str:
    try:
        return UI_SUMMARIES[(path, method)]
    except KeyError:
        raise SystemExit(f"describe {method.upper()} {path} in tools/openapi/ui.py") from None
