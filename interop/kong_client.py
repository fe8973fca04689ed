"""Drives a Portcullis control plane's Admin API with aio-kong, a third-party Kong client from PyPI.

Usage: kong_client.py ADMIN_URL ADMIN_TOKEN

Creates Services with nested Routes and plugins through the client's declarative apply, Consumers one by
one, lists them with the client's paging, applies Consumer ACL groups, updates, deletes, and prints what it
saw as one JSON object on stdout. Exits non-zero on the first error, with the client's error on stderr.
"""

import asyncio
import json
import sys

from aiohttp import ClientSession
from kong.client import Kong, KongResponseError

INTROSPECTION = {
    "introspection_url": "https://idp.example.test/introspect",
    "authorization_value": "Basic Y2xpZW50OnNlY3JldA==",
    "ttl": 60,
}


async def main(url: str, token: str) -> dict:
    seen: dict = {}
    session = ClientSession(headers={"Kong-Admin-Token": token})
    async with Kong(url=url, session=session) as cli:
        billing = {
            "name": "billing",
            "host": "billing.internal",
            "port": 8080,
            "routes": [
                {"name": "billing-api", "paths": ["/billing"]},
                {"name": "billing-admin", "paths": "/billing-admin", "methods": "GET"},
            ],
            "plugins": [{"name": "oauth2-introspection", "config": INTROSPECTION}],
        }
        search = {"name": "search", "host": "search.internal", "routes": [{"name": "search", "paths": ["/search"]}]}
        applied = await cli.apply_json({"services": [billing, search]})
        seen["applied"] = [
            {"name": s["name"], "routes": sorted(r["name"] for r in s.data["routes"]), "plugins": [p["name"] for p in s.data["plugins"]]}
            for s in applied["services"]
        ]
        # The document again with another port: the Service is updated in place, not created twice.
        await cli.apply_json({"services": [dict(billing, port=9090)]})
        seen["services"] = sorted(s["name"] for s in await cli.services.get_full_list())
        billing = await cli.services.get("billing")
        seen["billing_port"] = billing["port"]
        seen["billing_routes"] = sorted(r["name"] for r in await billing.routes.get_list())

        for i in range(25):
            await cli.consumers.create(username=f"user-{i:02}", custom_id=f"c-{i:02}", tags=["bulk"])
        pages = 0
        consumers = []
        async for c in cli.consumers.paginate(size=10, tags="bulk"):
            consumers.append(c["username"])
        # Count the pages the way the client walks them: follow `next` with size=10.
        data = await cli.execute(f"{url}/consumers", params={"size": 10})
        while True:
            pages += 1
            if not data.get("next"):
                break
            data = await cli.execute(f"{url}{data['next']}" if data["next"].startswith("/") else data["next"])
        seen["consumers"] = consumers
        seen["consumer_pages"] = pages

        updated = await cli.consumers.update("user-03", custom_id="c-03-renamed")
        seen["updated_custom_id"] = updated["custom_id"]
        plugin = (await cli.plugins.get_list())[0]
        patched = await cli.plugins.update(plugin.id, config={"ttl": 120})
        seen["plugin_ttl"] = patched["config"]["ttl"]
        seen["plugin_secret_shown"] = patched["config"]["authorization_value"]

        # Consumer ACLs the client's way: apply groups, then apply a different set (it adds and deletes).
        await cli.consumers.apply_json([{"username": "reader", "groups": ["readers", "staff"]}])
        reader = await cli.consumers.get("reader")
        seen["acl_groups"] = sorted(a["group"] for a in await reader.acls.get_list())
        await cli.consumers.apply_json([{"username": "reader", "groups": ["staff", "admins"]}])
        seen["acl_groups_after"] = sorted(a["group"] for a in await reader.acls.get_list())
        seen["acls_total"] = len(await cli.acls.get_list())

        search = await cli.services.get("search")
        await cli.services.delete(search.id)  # the client deletes the Service's Routes and plugins first
        seen["has_search"] = await cli.services.has("search")
        seen["routes_left"] = sorted(r["name"] for r in await cli.routes.get_list())
        await cli.consumers.delete("user-00")
        seen["has_user_00"] = await cli.consumers.has("user-00")
        try:
            await cli.services.create(name="billing", host="other.internal")
            seen["duplicate"] = None
        except KongResponseError as e:
            seen["duplicate"] = {"status": e.status, "message": e.message.get("message")}
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))), flush=True)
