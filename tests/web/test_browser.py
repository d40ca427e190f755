"""The web client in a real browser: Debian's Chromium, headless, driven by Selenium.

Two browsers (two profiles, nothing shared) sign in as two users: Ada's page on the
gateway's WebSocket, Bob's forced onto long-poll (``?transport=longpoll``), the fallback a
blocked WebSocket takes. They see the conversation and its unread count, typing, presence,
each other's messages, a reaction, an edit and a delete; Bob leaves the page, Ada writes,
and Bob's page, opened again, catches up; Ada starts a direct conversation, which shows in
Bob's list. Every run writes the two windows side by side to
``bench-results/browser.png``. A page whose WebSocket cannot open falls back to long-poll.

Skipped without ``chromium`` and ``chromedriver`` (scripts/services.sh installs them),
except under ``WHISPR_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final

import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from actors.conversation import Draft
from supervisors import stop_tree
from tests import services
from tests.gateway.conftest import RunningNode, start_node, unique
from whispr.bench.nodes import free_port
from whispr.client import PhoenixClient
from whispr.gateway.server import Gateway

SCREENSHOT: Final = Path(__file__).resolve().parents[2] / "bench-results" / "browser.png"
#: Flags that work in a container without a display, a GPU or a network to phone home to.
CHROMIUM_FLAGS: Final = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=760,620",
)
WAIT_S: Final = 20.0


def _binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        reason = "needs chromium and chromedriver (apt-get install chromium chromium-driver)"
        if services.services_required():
            pytest.fail(reason + " (required: WHISPR_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)
    return chromium, driver


@contextmanager
def _browser(chromium: str, driver: str, profile: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield browser
    finally:
        browser.quit()


class Page:
    """One user's page, driven from a thread (Selenium blocks; the node runs on this loop)."""

    def __init__(self, browser: webdriver.Chrome, url: str) -> None:
        self.browser = browser
        self.url = url

    async def __call__(self, action: Callable[[webdriver.Chrome], Any]) -> Any:
        return await asyncio.to_thread(action, self.browser)

    async def until(self, what: str, check: Callable[[webdriver.Chrome], Any]) -> Any:
        def wait(browser: webdriver.Chrome) -> Any:
            # The page re-renders its lists: an element found may be replaced before it is read.
            return WebDriverWait(
                browser,
                WAIT_S,
                poll_frequency=0.1,
                ignored_exceptions=(StaleElementReferenceException, AttributeError),
            ).until(check, message=f"timed out waiting for {what}")

        return await self(wait)

    async def open(self) -> None:
        await self(lambda b: b.get(self.url))
        await self.until("connected", lambda b: _connected(b))

    async def text(self, element_id: str) -> str:
        return str(await self(lambda b: b.find_element(By.ID, element_id).text))

    async def message(self, content: str) -> WebElement:
        return await self.until(f"message {content!r}", lambda b: _message(b, content))

    async def type(self, element_id: str, text: str) -> None:
        await self(lambda b: b.find_element(By.ID, element_id).send_keys(text))

    async def open_conversation(self, cid: str) -> None:
        def click(browser: webdriver.Chrome) -> bool:
            browser.find_element(By.CSS_SELECTOR, f'li[data-id="{cid}"]').click()
            return True

        await self.until(f"conversation {cid}", click)

    async def act(self, content: str, action: str) -> None:
        """Click ``action`` (``react``, ``edit``, ``delete``) on the message with ``content``.

        The actions show on hover only: clicked through the DOM, as a user's click does.
        """

        def click(browser: webdriver.Chrome) -> bool:
            item = _message(browser, content)
            if item is None:
                return False
            button = item.find_element(By.CSS_SELECTOR, f".{action}")
            browser.execute_script("arguments[0].click()", button)
            return True

        await self.until(f"{action} on {content!r}", click)


def _connected(browser: webdriver.Chrome) -> bool:
    return browser.find_element(By.TAG_NAME, "body").get_attribute("data-connected") == "yes"


def _message(browser: webdriver.Chrome, content: str) -> WebElement | None:
    for item in browser.find_elements(By.CSS_SELECTOR, "#messages li"):
        if content in item.text:
            return item
    return None


def _unread(browser: webdriver.Chrome, cid: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, f'li[data-id="{cid}"] .unread').text)


def _side_by_side(shots: list[bytes], path: Path) -> None:
    import io

    images = [Image.open(io.BytesIO(shot)) for shot in shots]
    gap = 12
    width = sum(image.width for image in images) + gap * (len(images) - 1)
    height = max(image.height for image in images)
    canvas = Image.new("RGB", (width, height), (200, 204, 212))
    x = 0
    for image in images:
        canvas.paste(image, (x, 0))
        x += image.width + gap
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


@pytest.fixture
async def node(tmp_path: Path) -> Any:
    running = await start_node({"WHISPR_SQLITE_PATH": str(tmp_path / "node.db")})
    try:
        yield running
    finally:
        await stop_tree(running.root, deadline=10)


@pytest.mark.slow
async def test_two_users_chat_in_two_browsers(node: RunningNode, tmp_path: Path) -> None:
    chromium, driver = _binaries()
    ada, bob = unique("ada"), unique("bob")
    messaging = node.node.messaging.get()
    cid = (await messaging.create_group(ada, "browsers", [bob])).id
    await messaging.send(ada, cid, Draft(client_id="welcome", content="welcome, Bob"))
    app = f"http://127.0.0.1:{node.node.http.get().port}/app/"
    with ExitStack() as stack:
        a = Page(
            stack.enter_context(_browser(chromium, driver, tmp_path / "ada")),
            f"{app}#token={node.token(ada, 'browser')}",
        )
        b = Page(
            stack.enter_context(_browser(chromium, driver, tmp_path / "bob")),
            f"{app}?transport=longpoll#token={node.token(bob, 'browser')}",
        )
        try:
            await _chat(a, b, ada, bob, cid)
        finally:
            shots = [await page(lambda br: br.get_screenshot_as_png()) for page in (a, b)]
            _side_by_side(shots, SCREENSHOT)


async def _chat(a: Page, b: Page, ada: str, bob: str, cid: str) -> None:
    await asyncio.gather(a.open(), b.open())
    transports = [
        await p(lambda br: br.find_element(By.TAG_NAME, "body").get_attribute("data-transport"))
        for p in (a, b)
    ]
    assert transports == ["websocket", "longpoll"]

    # Bob's list shows the conversation with Ada's message unread.
    assert await b.until("unread count", lambda br: _unread(br, cid) == "1")
    for page in (a, b):
        await page.open_conversation(cid)
    await b.message("welcome, Bob")
    assert await b.until("unread cleared", lambda br: _unread(br, cid) == "")
    await a.until("presence", lambda br: bob in br.find_element(By.ID, "online").text)

    # Typing shows on the other side; the message arrives.
    await a.type("draft", "hello from the WebSocket")
    await b.until("typing", lambda br: ada in br.find_element(By.ID, "typing").text)
    await a(lambda br: br.find_element(By.CSS_SELECTOR, "#composer button").click())
    await b.message("hello from the WebSocket")
    await b.type("draft", "and hello from long-poll")
    await b(lambda br: br.find_element(By.CSS_SELECTOR, "#composer button").click())
    await a.message("and hello from long-poll")

    # Bob reacts to Ada's message; Ada edits it, then deletes her welcome.
    await b.act("hello from the WebSocket", "react")
    await a.until("reaction", lambda br: "👍 1" in _message(br, "hello from the WebSocket").text)
    await a.act("hello from the WebSocket", "edit")
    await a(lambda br: _prompt(br, "hello, edited"))
    await b.message("hello, edited")
    await a.act("welcome, Bob", "delete")
    await a(lambda br: WebDriverWait(br, WAIT_S).until(lambda x: x.switch_to.alert).accept())
    await b.until("deleted", lambda br: _message(br, "welcome, Bob") is None)

    # Bob leaves the page; Ada writes; Bob's page, opened again, catches up.
    await b(lambda br: br.get("about:blank"))
    await a.type("draft", "while you were away")
    await a(lambda br: br.find_element(By.CSS_SELECTOR, "#composer button").click())
    await a.message("while you were away")
    await b.open()
    assert await b.until("unread after reload", lambda br: _unread(br, cid) == "1")
    await b.open_conversation(cid)
    await b.message("while you were away")
    await b.message("and hello from long-poll")

    # Ada starts a direct conversation with Bob from the page: it shows in Bob's list.
    await a.type("new-with", bob)
    await a(lambda br: br.find_element(By.CSS_SELECTOR, "#new-conversation button").click())
    await a.until(
        "direct opened", lambda br: br.find_element(By.ID, "conversation-title").text == bob
    )
    await a.type("draft", "a direct hello")
    await a(lambda br: br.find_element(By.CSS_SELECTOR, "#composer button").click())
    await b.until(
        "direct listed", lambda br: len(br.find_elements(By.CSS_SELECTOR, "#conversations li")) == 2
    )


def _title(browser: webdriver.Chrome) -> str:
    return str(browser.find_element(By.ID, "conversation-title").text)


def _conversations(browser: webdriver.Chrome) -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, "#conversations li")


def _prompt(browser: webdriver.Chrome, text: str) -> None:
    alert = WebDriverWait(browser, WAIT_S).until(lambda br: br.switch_to.alert)
    alert.send_keys(text)
    alert.accept()


@pytest.mark.slow
async def test_the_page_falls_back_to_long_poll_when_the_websocket_cannot_open(
    node: RunningNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chromium, driver = _binaries()
    ada, bob = unique("ada"), unique("bob")
    cid = (await node.node.messaging.get().create_group(ada, "fallback", [bob])).id
    websocket = node.url
    # The page is told a WebSocket port where nothing listens, as if a proxy blocked it.
    monkeypatch.setattr(Gateway, "port", property(lambda _self: free_port()))
    app = f"http://127.0.0.1:{node.node.http.get().port}/app/"
    topic = f"conversation:{cid}"
    async with PhoenixClient.connect(websocket, node.token(bob)) as b:
        await b.join(topic)
        with _browser(chromium, driver, tmp_path / "ada") as browser:
            a = Page(browser, f"{app}#token={node.token(ada, 'browser')}")
            await a.open()
            transport = await a(
                lambda br: br.find_element(By.TAG_NAME, "body").get_attribute("data-transport")
            )
            assert transport == "longpoll"
            await a.open_conversation(cid)
            await a.type("draft", "sent over long-poll")
            await a(lambda br: br.find_element(By.CSS_SELECTOR, "#composer button").click())
            event = await b.next_event(topic, "new_message")
            assert event.payload["message"]["content"] == "sent over long-poll"
            await b.push(topic, "send_message", {"client_id": "ws-1", "content": "over the socket"})
            await a.message("over the socket")
