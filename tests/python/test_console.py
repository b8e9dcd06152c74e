"""The web console in a real browser: Debian's chromium, headless, driven by
Selenium through Debian's chromium-driver (both installed by
scripts/setup-test-env). Screenshots of the pages go to
target/console-screenshots/ (docs/console.md shows them)."""

import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import make_device

pytestmark = pytest.mark.xdist_group("browser")

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("ROOST_CONSOLE_SCREENSHOTS", ROOT / "target" / "console-screenshots"))


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("chromium and chromium-driver are missing: run scripts/setup-test-env")
    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def heading_becomes(driver, text, timeout=10):
    """Waits for the page a click led to: its h1 reads `text`."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(
        lambda d: d.find_element(By.TAG_NAME, "h1").text == text
    )
    return True


def shot(driver, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def sign_in(driver, roost, key=None, secret=None):
    from selenium.webdriver.common.by import By

    real_key, real_secret = roost.credentials()
    driver.get(f"{roost.api_url}/console")
    assert driver.current_url.endswith("/console/sign-in"), driver.current_url
    driver.find_element(By.ID, "access_key_id").send_keys(key or real_key)
    driver.find_element(By.ID, "secret_access_key").send_keys(secret or real_secret)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()


def test_an_operator_signs_in_creates_a_thing_sees_it_and_signs_out(roost, browser, tmp_path):
    from selenium.webdriver.common.by import By

    # A wrong secret: refused, and said so.
    sign_in(browser, roost, secret="not-the-secret")
    assert "wrong" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    shot(browser, "sign-in")

    sign_in(browser, roost)
    assert heading_becomes(browser, "Things")
    assert browser.current_url.endswith("/console/things"), browser.current_url

    # A thing made through the API is listed; one made here is created through the API.
    make_device(roost, tmp_path, "canary-tenant-a")
    browser.refresh()
    assert browser.find_element(By.LINK_TEXT, "canary-tenant-a")
    browser.find_element(By.ID, "thing_name").send_keys("door-sensor")
    browser.find_element(By.CSS_SELECTOR, "form.inline button").click()
    assert heading_becomes(browser, "door-sensor")
    assert roost.boto().describe_thing(thingName="door-sensor")["thingName"] == "door-sensor"

    # A name the API refuses: its error, on the page, and nothing created.
    browser.get(f"{roost.api_url}/console/things")
    browser.find_element(By.ID, "thing_name").send_keys("door sensor!")
    browser.find_element(By.CSS_SELECTOR, "form.inline button").click()
    alert = browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert alert.startswith("InvalidRequestException"), alert
    assert len(roost.boto().list_things()["things"]) == 2
    shot(browser, "things")

    # The device's page: its certificate and attributes.
    browser.get(f"{roost.api_url}/console/things")
    browser.find_element(By.LINK_TEXT, "canary-tenant-a").click()
    assert heading_becomes(browser, "canary-tenant-a")
    principals = browser.find_element(By.CSS_SELECTOR, "ul.principals").text
    assert "cert/" in principals, principals
    shot(browser, "thing")

    # At phone width the page still fits.
    browser.set_window_size(390, 844)
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390, width
    browser.set_window_size(1280, 900)

    browser.find_element(By.CSS_SELECTOR, "form.sign-out button").click()
    assert heading_becomes(browser, "Sign in")
    assert browser.current_url.endswith("/console/sign-in")
    browser.get(f"{roost.api_url}/console/things")
    assert browser.current_url.endswith("/console/sign-in"), "signed out: the pages send to sign-in"


def post(url, fields, cookie=None):
    data = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    if cookie:
        request.add_header("Cookie", cookie)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def test_forms_without_the_session_or_its_csrf_token_are_refused(roost):
    base = f"{roost.api_url}/console"
    key, secret = roost.credentials()
    # Signing in needs the sign-in form's own token, in its cookie too.
    status, _, body = post(f"{base}/sign-in", {"csrf": "x", "access_key_id": key, "secret_access_key": secret})
    assert status == 403 and "CSRF" in body
    status, _, body = post(
        f"{base}/sign-in",
        {"csrf": "x", "access_key_id": key, "secret_access_key": secret},
        cookie="roost_console_login=x",
    )
    assert status == 303, body
    set_cookies = session_cookies(base, key, secret)
    session = next(c.split(";")[0] for c in set_cookies if c.startswith("roost_console="))
    # The session cookie is HttpOnly and SameSite=Strict.
    attributes = next(c for c in set_cookies if c.startswith("roost_console="))
    assert "HttpOnly" in attributes and "SameSite=Strict" in attributes, attributes
    # The session's cookie without the right CSRF token: refused, nothing created.
    status, _, body = post(f"{base}/things", {"csrf": "guess", "thing_name": "forged"}, cookie=session)
    assert status == 403 and "CSRF" in body
    status, _, _ = post(f"{base}/things", {"thing_name": "forged"}, cookie=session)
    assert status in (400, 403, 422)
    # No session at all: refused.
    status, _, _ = post(f"{base}/things", {"csrf": "guess", "thing_name": "forged"})
    assert status == 403
    assert roost.boto().list_things()["things"] == []


def session_cookies(base, key, secret):
    _, headers, _ = post(
        f"{base}/sign-in",
        {"csrf": "t", "access_key_id": key, "secret_access_key": secret},
        cookie="roost_console_login=t",
    )
    return headers.get_all("Set-Cookie") or []


def test_a_device_connects_with_the_files_the_console_made_and_its_page_shows_it_connected(roost, browser, tmp_path):
    """The AWS console's walk-through: a thing, a certificate with one click
    (its files shown once), the policy attached; the device connects with
    those files (paho) and its page says so, as GetThingConnectivityData
    does."""
    import paho.mqtt.client as mqtt
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from conftest import ALLOW_ALL
    from mqtt_helpers import close, paho_connect, wait_until

    iot = roost.boto()
    iot.create_policy(policyName="canary-policy", policyDocument=ALLOW_ALL)
    sign_in(browser, roost)
    assert heading_becomes(browser, "Things")
    browser.find_element(By.ID, "thing_name").send_keys("lobby-canary")
    browser.find_element(By.CSS_SELECTOR, "form.inline button").click()
    assert heading_becomes(browser, "lobby-canary")
    assert "Not connected" in browser.find_element(By.CSS_SELECTOR, ".connectivity").text
    Select(browser.find_element(By.ID, "policy_name")).select_by_visible_text("canary-policy")
    browser.find_element(By.XPATH, "//button[text()='Create certificate']").click()
    assert heading_becomes(browser, "Certificate created")
    shot(browser, "certificate-created")
    certificate = browser.find_element(By.ID, "certificate-pem").text
    key = browser.find_element(By.ID, "private-key").text
    assert certificate.startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY-----" in key

    certfile, keyfile, cafile = tmp_path / "device.pem.crt", tmp_path / "private.pem.key", tmp_path / "root-ca.pem"
    certfile.write_text(certificate + "\n")
    keyfile.write_text(key + "\n")
    keyfile.chmod(0o600)
    with urllib.request.urlopen(f"{roost.api_url}/root-ca.pem", timeout=10) as resp:
        cafile.write_bytes(resp.read())
    principals = iot.list_thing_principals(thingName="lobby-canary")["principals"]
    assert len(principals) == 1
    assert [p["policyName"] for p in iot.list_attached_policies(target=principals[0])["policies"]] == ["canary-policy"]

    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="lobby-canary", protocol=mqtt.MQTTv311)
    device.tls_set(ca_certs=str(cafile), certfile=str(certfile), keyfile=str(keyfile))
    assert not paho_connect(device, roost.mqtt_port)["rc"].is_failure
    assert iot.get_thing_connectivity_data(thingName="lobby-canary")["connected"] is True

    browser.get(f"{roost.api_url}/console/things/lobby-canary")
    status = browser.find_element(By.CSS_SELECTOR, ".connectivity").text
    assert status.startswith("Connected since") and "lobby-canary" in status, status
    shot(browser, "thing-connected")
    close(device)
    assert wait_until(lambda: not iot.get_thing_connectivity_data(thingName="lobby-canary")["connected"])
