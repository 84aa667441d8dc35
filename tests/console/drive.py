"""Drives jitgate's web console in a real headless Chromium, one command per stdin line.

The Rust test (tests/console_browser.rs) holds the scenario; this script only carries out
browser steps and answers each with one JSON line on stdout: {"ok": true, ...} or
{"ok": false, "error": "..."}. Commands (JSON objects, field "op"):

  open {url, width, height}         start Chromium (or resize it) and load url
  sign_in {token}                   type the token into input[name=token] and submit
  wait {css, text?, timeout?}       until an element matching css is shown (and its text
                                    contains text); answers its text
  gone {css, timeout?}              until no element matches css
  click {css}                       click the first element matching css
  type {css, text}                  clear the field and type text
  texts {css, attr?}                text (or attribute attr) of every element matching css
  hash {value}                      set location.hash (in-page navigation, no reload)
  tab_until {css, max?}             press Tab (from the focused element) until the element
                                    matching css has the focus; answers how many presses
  press {key}                       press a key (e.g. "ENTER") on the focused element
  scroll_to {css}                   scroll until the element is in view
  remember {css}                    keep a handle on an element
  unchanged {}                      whether the remembered element is still the same node
                                    (a page reload would replace it)
  page_errors {}                    the browser console's errors so far (script exceptions,
                                    Content-Security-Policy refusals), without failed loads
                                    (a 401 or 404 the page handles)
  screenshot {path}                 save a PNG
  quit {}

Needs: selenium (pip), Debian's chromium and chromium-driver.
"""

import json
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

driver = None
remembered = None


def start(width, height):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def until(what, timeout, probe):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            found = probe()
            if found is not None:
                return found
        except StaleElementReferenceException as e:
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} ({last})")


def shown(css, text=None):
    for e in driver.find_elements(By.CSS_SELECTOR, css):
        if e.is_displayed() and (text is None or text in e.text):
            return e
    return None


def run(cmd):
    global driver, remembered
    op = cmd["op"]
    timeout = cmd.get("timeout", 30)
    if op == "open":
        if driver is None:
            driver = start(cmd["width"], cmd["height"])
        else:
            driver.set_window_size(cmd["width"], cmd["height"])
        if cmd.get("url"):
            driver.get(cmd["url"])
        return {}
    if op == "sign_in":
        field = until("the token field", timeout, lambda: shown("input[name=token]"))
        field.clear()
        field.send_keys(cmd["token"])
        field.submit()
        until("the signed-in header", timeout, lambda: shown("#whoami"))
        return {"text": shown("#whoami").text}
    if op == "wait":
        e = until(f"{cmd['css']} with {cmd.get('text')!r}", timeout,
                  lambda: shown(cmd["css"], cmd.get("text")))
        return {"text": e.text}
    if op == "gone":
        until(f"{cmd['css']} to go", timeout,
              lambda: True if not driver.find_elements(By.CSS_SELECTOR, cmd["css"]) else None)
        return {}
    if op == "click":
        until(cmd["css"], timeout, lambda: shown(cmd["css"])).click()
        return {}
    if op == "type":
        e = until(cmd["css"], timeout, lambda: shown(cmd["css"]))
        e.clear()
        e.send_keys(cmd["text"])
        return {}
    if op == "texts":
        attr = cmd.get("attr")
        elements = driver.find_elements(By.CSS_SELECTOR, cmd["css"])
        return {"values": [e.get_attribute(attr) if attr else e.text for e in elements]}
    if op == "hash":
        driver.execute_script("location.hash = arguments[0]", cmd["value"])
        return {}
    if op == "tab_until":
        targets = driver.find_elements(By.CSS_SELECTOR, cmd["css"])
        for presses in range(1, cmd.get("max", 10) + 1):
            driver.switch_to.active_element.send_keys(Keys.TAB)
            if driver.switch_to.active_element in targets:
                return {"presses": presses}
        raise TimeoutError(f"{cmd['css']} not reached with Tab")
    if op == "press":
        driver.switch_to.active_element.send_keys(getattr(Keys, cmd["key"]))
        return {}
    if op == "scroll_to":
        e = until(cmd["css"], timeout, lambda: shown(cmd["css"]))
        ActionChains(driver).scroll_to_element(e).perform()
        return {}
    if op == "remember":
        remembered = until(cmd["css"], timeout, lambda: shown(cmd["css"]))
        return {}
    if op == "unchanged":
        try:
            remembered.is_displayed()
            return {"unchanged": True}
        except StaleElementReferenceException:
            return {"unchanged": False}
    if op == "page_errors":
        errors = [e["message"] for e in driver.get_log("browser")
                  if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]
        return {"errors": errors}
    if op == "screenshot":
        driver.save_screenshot(cmd["path"])
        return {"path": cmd["path"]}
    if op == "quit":
        return {}
    raise ValueError(f"unknown op {op!r}")


def main():
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            try:
                answer = {"ok": True, **run(cmd)}
            except Exception as e:  # every failure goes back to the test, which fails
                answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            print(json.dumps(answer), flush=True)
            if cmd["op"] == "quit":
                break
    finally:
        if driver is not None:
            driver.quit()


if __name__ == "__main__":
    main()
