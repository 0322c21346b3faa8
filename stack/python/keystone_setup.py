"""Create the Keystone resources that the stack's Keystone mode needs.

Runs with the Keystone virtual environment's Python after
``keystone-manage bootstrap``. Every step looks the resource up by name
first, so running it again changes nothing. It creates:

* the ``service`` project and the ``neutron`` service user (role ``admin``
  and ``service`` there), used by Neutron's keystonemiddleware;
* the ``network`` service with public and internal endpoints at the local
  Neutron, so that clients find Neutron in the catalog;
* two projects, each with one user that has the ``member`` role, and in
  the first project a user for kuryrnet with ``member`` and ``service``.

Arguments are passed as environment variables (see main()).
"""

import json
import os
import sys

import requests

TIMEOUT = 10


class Keystone:
    def __init__(self, url, admin_password):
        self.url = url.rstrip("/") + "/v3"
        self.session = requests.Session()
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": "admin",
                            "domain": {"id": "default"},
                            "password": admin_password,
                        }
                    },
                },
                "scope": {
                    "project": {"name": "admin", "domain": {"id": "default"}}
                },
            }
        }
        response = self.session.post(
            self.url + "/auth/tokens", json=body, timeout=TIMEOUT
        )
        response.raise_for_status()
        self.session.headers["X-Auth-Token"] = response.headers[
            "X-Subject-Token"
        ]

    def find(self, collection, **filters):
        response = self.session.get(
            f"{self.url}/{collection}", params=filters, timeout=TIMEOUT
        )
        response.raise_for_status()
        items = response.json()[collection]
        return items[0] if items else None

    def ensure(self, collection, member, attributes, lookup):
        found = self.find(collection, **lookup)
        if found:
            return found
        response = self.session.post(
            f"{self.url}/{collection}",
            json={member: attributes},
            timeout=TIMEOUT,
        )
        response.raise_for_status()
        print(f"keystone: created {member} {attributes.get('name', '')}")
        return response.json()[member]

    def ensure_role(self, name):
        return self.ensure("roles", "role", {"name": name}, {"name": name})

    def ensure_project(self, name):
        return self.ensure(
            "projects",
            "project",
            {"name": name, "domain_id": "default"},
            {"name": name, "domain_id": "default"},
        )

    def ensure_user(self, name, password, project):
        user = self.ensure(
            "users",
            "user",
            {
                "name": name,
                "domain_id": "default",
                "password": password,
                "default_project_id": project["id"],
            },
            {"name": name, "domain_id": "default"},
        )
        # Keep the password in step with the stack's settings.
        self.session.patch(
            f"{self.url}/users/{user['id']}",
            json={"user": {"password": password}},
            timeout=TIMEOUT,
        ).raise_for_status()
        return user

    def grant(self, project, user, role):
        self.session.put(
            f"{self.url}/projects/{project['id']}/users/{user['id']}"
            f"/roles/{role['id']}",
            timeout=TIMEOUT,
        ).raise_for_status()

    def ensure_endpoint(self, service, interface, url, region):
        endpoint = self.find(
            "endpoints", service_id=service["id"], interface=interface
        )
        if endpoint and endpoint["url"] == url:
            return
        if endpoint:
            self.session.delete(
                f"{self.url}/endpoints/{endpoint['id']}", timeout=TIMEOUT
            ).raise_for_status()
        self.ensure(
            "endpoints",
            "endpoint",
            {
                "service_id": service["id"],
                "interface": interface,
                "url": url,
                "region_id": region,
            },
            {"service_id": service["id"], "interface": interface},
        )


def main():
    env = os.environ
    keystone = Keystone(env["KEYSTONE_URL"], env["KEYSTONE_ADMIN_PASSWORD"])

    admin_role = keystone.ensure_role("admin")
    service_role = keystone.ensure_role("service")

    service_project = keystone.ensure_project("service")
    neutron_user = keystone.ensure_user(
        env["KEYSTONE_NEUTRON_USER"],
        env["KEYSTONE_NEUTRON_PASSWORD"],
        service_project,
    )
    keystone.grant(service_project, neutron_user, admin_role)
    keystone.grant(service_project, neutron_user, service_role)

    network = keystone.ensure(
        "services",
        "service",
        {"name": "neutron", "type": "network"},
        {"type": "network"},
    )
    for interface in ("public", "internal"):
        keystone.ensure_endpoint(
            network, interface, env["NEUTRON_URL"], env["KEYSTONE_REGION"]
        )

    # KEYSTONE_PROJECT_USERS is a JSON list of [project, user, password, roles].
    for project_name, user_name, password, role_names in json.loads(
        env["KEYSTONE_PROJECT_USERS"]
    ):
        project = keystone.ensure_project(project_name)
        user = keystone.ensure_user(user_name, password, project)
        for role_name in role_names:
            keystone.grant(project, user, keystone.ensure_role(role_name))


if __name__ == "__main__":
    try:
        main()
    except requests.RequestException as error:
        print(f"keystone setup failed: {error}", file=sys.stderr)
        sys.exit(1)
