"""The web UI in Debian's Chromium, headless, driven by Playwright (no browser download).

Run ``scripts/test_system_deps.sh`` first. With ``EVENTBRIDGE_SCREENSHOTS=<dir>`` the main pages are
also saved as PNG files there (docs/screenshots/ holds the committed ones).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, async_playwright, expect
from server_helpers import steps_workflow, wait_phase, workflow

import eventbridge.triggers.log  # noqa: F401  (registers the log trigger)
from eventbridge.bus.sqlite import SqliteBus
from eventbridge.models.kinds import parse_manifest
from eventbridge.models.references import ManifestReferences
from eventbridge.sensor.manager import SensorManager, SensorRecord
from eventbridge.sources.manager import SourceManager
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = os.environ.get("EVENTBRIDGE_SCREENSHOTS", "")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    new_page = await context.new_page()
    errors: list[str] = []
    new_page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield new_page
    await context.close()
    assert errors == [], f"JavaScript errors: {errors}"


async def shot(page: Page, name: str) -> None:
    if SHOTS:
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def base(client: TestClient) -> str:
    return str(client.make_url("")).rstrip("/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Records:
    def __init__(self) -> None:
        self.items: list[SensorRecord] = []

    def traces(self, namespace: str, sensor: str, limit: int = 100) -> list[SensorRecord]:
        return [r for r in reversed(self.items) if r.sensor == f"{namespace}/{sensor}"][:limit]


@pytest.fixture
async def demo(  # type: ignore[no-untyped-def]
    make_client, store: SqliteStore, bus: SqliteBus, controller: Controller
) -> AsyncIterator[TestClient]:
    """A server with some of everything: workflows, templates, a cron, an event source, a sensor, events."""
    port = free_port()
    source = parse_manifest(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "EventSource",
            "metadata": {"name": "webhook", "namespace": "default"},
            "spec": {"webhook": {"example": {"port": str(port), "endpoint": "/example", "method": "POST"}}},
        }
    )
    sensor = parse_manifest(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Sensor",
            "metadata": {"name": "webhook", "namespace": "default"},
            "spec": {
                "dependencies": [
                    {
                        "name": "payload",
                        "eventSourceName": "webhook",
                        "eventName": "example",
                        "filters": {"data": [{"path": "body.message", "type": "string", "value": [".+"]}]},
                    }
                ],
                "triggers": [{"template": {"name": "log-it", "log": {}}}],
            },
        }
    )
    records = Records()
    references = ManifestReferences([])
    sources = SourceManager(bus, references, host="127.0.0.1")
    sensors = SensorManager(bus, store, references, on_record=records.items.append)
    await sensors.apply([sensor])  # type: ignore[list-item]
    await sources.apply([source])  # type: ignore[list-item]
    async with aiohttp.ClientSession() as session:
        for body in ({"message": "deploy main"}, {"other": 1}, {"message": "hello"}):
            async with session.post(f"http://127.0.0.1:{port}/example", json=body) as response:
                assert response.status == 200
    await store.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "greeting", "namespace": "default"},
            "spec": {
                "entrypoint": "main",
                "arguments": {"parameters": [{"name": "who", "value": "world", "description": "whom to greet"}]},
                "templates": [
                    {"name": "main", "container": {"image": "a", "command": ["echo", "{{workflow.parameters.who}}"]}}
                ],
            },
        }
    )
    await store.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "CronWorkflow",
            "metadata": {"name": "nightly-report", "namespace": "default"},
            "spec": {
                "schedule": "30 2 * * *",
                "timezone": "Europe/Paris",
                "workflowSpec": {"entrypoint": "main", "templates": []},
            },
        }
    )
    await store.create(steps_workflow("build-and-test"))
    await store.create(workflow("broken-deploy", script="echo deploying; echo 'error: no such host' >&2; exit 1"))
    await wait_phase(store, "build-and-test", {"Succeeded"})
    await wait_phase(store, "broken-deploy", {"Failed"})
    client = await make_client(eventsources=lambda: [source], sensors=lambda: [sensor], sources=sources, traces=records)
    yield client
    await sources.stop()
    await sensors.stop()


async def test_main_pages_load_and_the_graph_renders(demo: TestClient, page: Page, store: SqliteStore) -> None:
    url = base(demo)
    await page.goto(f"{url}/workflows")
    await expect(page.locator("tr[data-name='build-and-test'] .phase")).to_have_text("Succeeded")
    await expect(page.locator("tr[data-name='broken-deploy'] .phase")).to_have_text("Failed")
    await shot(page, "workflows")

    await page.click("text=build-and-test")
    await expect(page).to_have_url(f"{url}/workflows/default/build-and-test")
    nodes = page.locator("svg.wfgraph g.node")
    assert await nodes.count() >= 5
    box = await page.locator("svg.wfgraph").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    await expect(page.locator("svg.wfgraph text", has_text="left")).to_be_visible()
    await expect(page.locator("#logs")).to_contain_text("said one")
    await shot(page, "workflow-graph")

    await page.goto(f"{url}/workflows/default/broken-deploy")
    await expect(page.locator("#logs")).to_contain_text("no such host")
    await expect(page.get_by_role("button", name="Retry")).to_be_visible()

    await page.goto(f"{url}/templates/default/greeting")
    await expect(page.locator("input[name='param.who']")).to_have_value("world")
    await shot(page, "template-submit")
    await page.fill("input[name='param.who']", "browser")
    await page.click("button:has-text('Submit')")
    await page.wait_for_url(re.compile(r".*/workflows/default/greeting-[a-z0-9]{5}$"))
    assert (await store.get("Workflow", "default", page.url.rsplit("/", 1)[1]))["spec"]["arguments"] == {
        "parameters": [{"name": "who", "value": "browser"}]
    }

    await page.goto(f"{url}/cron")
    await expect(page.locator("tr[data-name='nightly-report'] .next-run")).to_contain_text("UTC")
    await shot(page, "cron")

    await page.goto(f"{url}/eventsources")
    await expect(page.locator("table.eventsource")).to_contain_text("running")
    await expect(page.locator("table.eventsource")).to_contain_text("/example")
    await shot(page, "eventsources")

    await page.goto(f"{url}/sensors/default/webhook")
    await expect(page.locator("table.traces")).to_contain_text("log-it")
    await expect(page.locator("table.traces")).to_contain_text("payload")
    await shot(page, "sensor")

    await page.goto(f"{url}/events")
    await expect(page.locator("table.events tbody tr")).to_have_count(3)
    await page.fill("input[name='q']", "deploy main")
    await page.click("button:has-text('Search')")
    await expect(page.locator("table.events tbody tr")).to_have_count(1)
    await shot(page, "events")


async def test_a_live_workflow_updates_without_a_reload(demo: TestClient, page: Page, store: SqliteStore) -> None:
    url = base(demo)
    await page.goto(f"{url}/workflows")
    await page.evaluate("window.__notReloaded = true")
    await expect(page.locator("#live.on")).to_have_count(1)
    await store.create(workflow("live-one", script="sleep 1; echo done"))
    row = page.locator("tr[data-name='live-one']")
    await expect(row).to_have_attribute("data-phase", "Running", timeout=10_000)
    await expect(row).to_have_attribute("data-phase", "Succeeded", timeout=15_000)
    assert await page.evaluate("window.__notReloaded === true")

    await store.create(workflow("live-two", script="echo start; sleep 1.5; echo finish"))
    await page.goto(f"{url}/workflows/default/live-two")
    await page.evaluate("window.__notReloaded = true")
    await expect(page.locator("#wf-phase")).to_have_text("Succeeded", timeout=15_000)
    await expect(page.locator("#logs")).to_contain_text("finish", timeout=5_000)
    assert await page.evaluate("window.__notReloaded === true")


async def test_an_action_works(demo: TestClient, page: Page, store: SqliteStore) -> None:
    url = base(demo)
    await store.create(workflow("pausable", script="sleep 20"))
    await wait_phase(store, "pausable", {"Running"})
    await page.goto(f"{url}/workflows/default/pausable")
    await page.get_by_role("button", name="Suspend").click()
    await expect(page.locator("#workflow-live")).to_contain_text("(suspended)")
    assert (await store.get("Workflow", "default", "pausable"))["spec"]["suspend"] is True
    await page.get_by_role("button", name="Resume").click()
    await expect(page.get_by_role("button", name="Suspend")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Terminate").click()
    await expect(page.locator("#wf-phase")).to_have_text("Failed", timeout=15_000)
    assert (await store.get("Workflow", "default", "pausable"))["spec"]["shutdown"] == "Terminate"
    await shot(page, "workflow-actions")
