"""The rating app in a real browser: Debian chromium driven by Playwright, against `t2i-align label`.

No skip when chromium is missing: CI installs it (.ci/run), and a browser test that silently
does not run is a test that cannot fail.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse

import pytest
from conftest import CHROMIUM, RATER_PASSWORD, LabelServer, add_rater, make_run_dir
from playwright.sync_api import Page, expect, sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def labeling_browser_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    run = make_run_dir(root, 6)
    (root / "secret.txt").write_text("not for raters")
    accounts = root / "raters.db"
    add_rater(accounts, "bob")
    server = LabelServer(run, accounts, root / "server.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def labeling_chromium():
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def log_in(page: Page, url: str, name: str, password: str) -> None:
    page.goto(url)
    page.locator("input[type=text]").fill(name)
    page.locator("input[type=password]").fill(password)
    page.get_by_role("button", name="Login").click()


def shown_sample(page: Page, sample_id: str) -> None:
    """Wait until `sample_id` is on screen and its image has really loaded (through the login)."""
    image = page.locator(f'#image img.sample[data-sample-id="{sample_id}"]')
    expect(image).to_be_visible()
    page.wait_for_function("(img) => img.complete && img.naturalWidth === 64", arg=image.element_handle())


def test_rate_three_images_by_mouse_and_keyboard_undo_one_and_tag_a_reason(labeling_browser_server, labeling_chromium):
    server = labeling_browser_server
    page = labeling_chromium.new_page()
    log_in(page, server.url, "bob", RATER_PASSWORD)
    shown_sample(page, "000000")
    expect(page.locator("#prompt")).to_have_text("a red square")
    expect(page.get_by_text("Does the image match the prompt?")).to_be_visible()
    for key in ("[Y]", "[N]", "[S]", "[U]"):
        expect(page.get_by_role("button", name=key)).to_be_visible()
    # Scaled up without blurring, and the next image is already loaded before any click.
    sample = page.locator("#image img.sample")
    assert sample.evaluate("img => getComputedStyle(img).imageRendering") == "pixelated"
    assert sample.bounding_box()["width"] >= 256
    page.wait_for_function("() => { const p = document.querySelector('#image img.prefetch');"
                           " return p && p.complete && p.naturalWidth === 64; }")
    assert "000001.png" in page.locator("#image img.prefetch").get_attribute("src")

    page.locator("#thumbs-up").click()  # mouse
    expect(page.locator("#status .ack")).to_have_attribute("data-rating-id", "1")
    shown_sample(page, "000001")

    page.keyboard.press("n")  # keyboard: thumbs down, no reason yet
    expect(page.locator("#status .ack")).to_have_attribute("data-rating-id", "2")
    shown_sample(page, "000002")

    page.keyboard.press("u")  # undo brings 000001 back
    expect(page.locator("#status")).to_contain_text("Undid rating #2")
    shown_sample(page, "000001")

    expect(page.locator("#reasons")).to_contain_text("wrong shape  [2]")  # every reason shows its key
    page.keyboard.press("3")  # tick "wrong colour"
    expect(page.get_by_label("wrong colour")).to_be_checked()
    page.keyboard.press("n")
    expect(page.locator("#status .ack")).to_have_attribute("data-rating-id", "3")
    expect(page.locator("#status")).to_contain_text("wrong colour")
    shown_sample(page, "000002")
    expect(page.get_by_label("wrong colour")).not_to_be_checked()

    page.keyboard.press("y")
    expect(page.locator("#status .ack")).to_have_attribute("data-rating-id", "4")
    expect(page.locator("#progress")).to_contain_text("You today: 3")
    expect(page.get_by_role("tab", name="Admin")).to_have_count(0)  # bob is no admin
    page.close()

    db = sqlite3.connect(server.run / "labels.db")
    rows = db.execute("SELECT id, sample_id, rater, rater_kind, label, reasons, undone_at IS NOT NULL FROM ratings"
                      " ORDER BY id").fetchall()
    assert [(i, s, r, k, lab, json.loads(why), undone) for i, s, r, k, lab, why, undone in rows] == [
        (1, "000000", "bob", "human", 1, [], 0),
        (2, "000001", "bob", "human", 0, [], 1),
        (3, "000001", "bob", "human", 0, ["wrong colour"], 0),
        (4, "000002", "bob", "human", 1, [], 0),
    ]


def test_wrong_password_anonymous_image_and_path_traversal_are_refused(labeling_browser_server, labeling_chromium):
    server = labeling_browser_server
    image = server.run / "images" / "000003.png"
    file_url = server.url + "/gradio_api/file="

    anonymous = labeling_chromium.new_context()
    assert anonymous.request.get(file_url + str(image)).status in (401, 403)
    page = anonymous.new_page()
    log_in(page, server.url, "bob", "not-the-password")
    expect(page.get_by_text("Incorrect credentials")).to_be_visible()
    expect(page.locator("#thumbs-up")).to_have_count(0)
    anonymous.close()

    context = labeling_chromium.new_context()
    page = context.new_page()
    log_in(page, server.url, "bob", RATER_PASSWORD)
    expect(page.locator("#thumbs-up")).to_be_visible()
    assert context.request.get(file_url + str(image)).status == 200  # the same URL, logged in
    escapes = [
        str(server.run / "images" / "%2e%2e" / "labels.db"),
        str(server.run / "images" / "%2e%2e" / "%2e%2e" / "secret.txt"),
        urllib.parse.quote(str(server.run / "images" / ".." / "samples.parquet")),
        str(server.run / "labels.db"),
        "/etc/passwd",
    ]
    for path in escapes:
        response = context.request.get(file_url + path)
        assert response.status in (403, 404), (path, response.status)
        assert b"not for raters" not in response.body()
    context.close()


def test_a_crafted_sample_id_does_not_run_script_in_the_rater_s_browser(tmp_path, labeling_chromium):
    """The attack: a samples.parquet whose id closes the attribute and adds an element with a handler."""
    import pandas as pd

    run = make_run_dir(tmp_path, 2)
    samples = pd.read_parquet(run / "samples.parquet")
    crafted = '0"><img src=x onerror="document.title=\'pwned\'"><b x="'
    samples.loc[0, "id"] = crafted
    samples.to_parquet(run / "samples.parquet", index=False)
    accounts = tmp_path / "raters.db"
    add_rater(accounts, "bob")
    server = LabelServer(run, accounts, tmp_path / "server.log").start()
    try:
        page = labeling_chromium.new_page()
        log_in(page, server.url, "bob", RATER_PASSWORD)
        image = page.locator("#image img.sample")
        expect(image).to_be_visible()
        assert image.get_attribute("data-sample-id") == crafted  # shown as data, not markup
        page.wait_for_timeout(300)  # the injected image's error handler would have fired by now
        assert page.title() != "pwned"
        assert page.locator("#image img[src='x']").count() == 0
        page.close()
    finally:
        server.stop()


def test_another_site_cannot_frame_the_app(labeling_browser_server, labeling_chromium, tmp_path):
    """The attack: clickjacking. A page on another origin loads the app in an invisible frame over its
    own buttons. The app's frame-ancestors policy makes chromium refuse to render it there."""
    attacker = tmp_path / "attacker.html"
    attacker.write_text(f'<iframe id="app" src="{labeling_browser_server.url}/" width="800" height="600"></iframe>')
    page = labeling_chromium.new_page()
    page.goto(attacker.as_uri(), wait_until="networkidle")
    page.wait_for_timeout(1000)  # unframed, the login form is drawn well within this (checked by removing the policy)
    (frame,) = [f for f in page.frames if f != page.main_frame]
    assert frame.locator("input[type=password]").count() == 0  # no login form inside another site
    page.close()
    own = labeling_chromium.new_page()  # the same app opened on its own still shows its login form
    own.goto(labeling_browser_server.url)
    expect(own.locator("input[type=password]")).to_be_visible()
    own.close()
