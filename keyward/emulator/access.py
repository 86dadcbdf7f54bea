"""The checks every Cloud API makes before doing anything: does the project exist, is the API
enabled there, may the caller use this IAM permission.

The emulator has one caller, so "may the caller" means "has the permission not been denied in
the project with `deny_permission`". Google answers an unknown project exactly like a denied
permission ("... (or it may not exist)"), and so does this.
"""

from __future__ import annotations

from keyward.emulator import errors
from keyward.emulator.state import Project, State

TITLES = {
    "apikeys.googleapis.com": "API Keys API",
    "generativelanguage.googleapis.com": "Generative Language API",
    "monitoring.googleapis.com": "Cloud Monitoring API",
    "serviceusage.googleapis.com": "Service Usage API",
}


def check_access(state: State, ref: str, service: str, permission: str,
                 resource: str | None = None) -> Project:
    """Return project `ref` (id or number) if `permission` of `service` is usable there.

    Raise 403 SERVICE_DISABLED if the API is off, 403 IAM_PERMISSION_DENIED if the permission is
    denied or the project does not exist. `resource` defaults to the project itself.
    """
    with state.lock:
        project = state.find_project(ref)
        if project is None:
            raise errors.permission_denied(permission, resource or f"projects/{ref}")
        if service in project.disabled:
            raise errors.service_disabled(service, TITLES.get(service, service), project.number)
        if permission in project.denied:
            raise errors.permission_denied(permission, resource or f"projects/{project.number}")
        return project
