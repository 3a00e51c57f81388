// Drives the unit's local page in headless Chromium for hil-tests/tests/unit_page.rs.
// Usage: node unit_page.mjs BASE_URL USER PROVISIONING_PASSWORD NEW_PASSWORD SCREENSHOT_DIR NEW_CAMERA_URL
// Prints one JSON line per step; waits for a line on stdin where the test acts on the unit.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const [base, user, provisional, fresh, shots, newCamera] = process.argv.slice(2);
const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = obj => console.log(JSON.stringify(obj));
const T = 60_000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const requests = [];
  page.on("requestfinished", async r => {
    const s = await r.sizes();
    requests.push({ url: r.url(), bytes: s.responseBodySize + s.responseHeadersSize });
  });
  page.on("requestfailed", r => requests.push({ url: r.url(), failed: r.failure()?.errorText }));
  const errors = [];
  page.on("pageerror", e => errors.push(String(e)));

  await page.goto(base + "/");
  await page.locator("#login").waitFor({ state: "visible", timeout: T });
  await page.fill("#login input[name=user]", user);
  await page.fill("#login input[name=password]", provisional + "-wrong");
  await page.click("#login button");
  await page.locator("#login .err").filter({ hasText: /wrong/ }).waitFor({ timeout: T });
  const wrongMessage = await page.textContent("#login .err");
  await page.fill("#login input[name=password]", provisional);
  await page.click("#login button");
  await page.locator("#password").waitFor({ state: "visible", timeout: T });
  await page.fill("#password input[name=current]", provisional);
  await page.fill("#password input[name=new]", fresh);
  await page.click("#password button");
  await page.locator("#dash").waitFor({ state: "visible", timeout: T });
  // The dashboard's weight: everything transferred from the first request to the first
  // complete dashboard (both cameras live).
  for (const cam of ["front", "rear"]) {
    await page.locator(`.cam[data-camera="${cam}"][data-state="streaming"]`).waitFor({ timeout: T });
  }
  await page.locator("#storage dd").first().waitFor({ timeout: T });
  const first = [...requests];
  say({
    step: "live",
    weight: first.reduce((n, r) => n + (r.bytes || 0), 0),
    urls: [...new Set(first.map(r => r.url))],
    failed: first.filter(r => r.failed),
    wrong_message: wrongMessage,
  });

  await stdin.next(); // The test stops the rear camera.
  const down = page.locator('.cam[data-camera="rear"][data-state="down"] .reason');
  await down.waitFor({ timeout: T });
  const reason = await down.textContent();
  // Wait for a later refresh that also shows an event, so the screenshot shows the loss.
  await page.locator("#events li").filter({ hasText: "CameraLost" }).first().waitFor({ timeout: T });
  await page.screenshot({ path: shots + "/demo-edge.png", fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.locator('.cam[data-camera="rear"]').waitFor({ timeout: T });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.screenshot({ path: shots + "/demo-edge-phone.png" });
  await page.setViewportSize({ width: 1280, height: 900 });

  // The support bundle and an export of the last 20 s of the front camera, as downloads.
  const [bundle] = await Promise.all([page.waitForEvent("download", { timeout: T }), page.click("#bundle")]);
  await bundle.saveAs(process.env.DOWNLOADS + "/bundle.tar");
  await page.locator('#timeline .tl[data-camera="front"] span').first().waitFor({ timeout: T });
  const range = await page.evaluate(() => {
    const f = document.getElementById("export").elements, now = Date.now();
    f.camera.value = "front";
    f.start.value = localInput(new Date(now - 20000));
    f.end.value = localInput(new Date(now));
    return [new Date(f.start.value).toISOString(), new Date(f.end.value).toISOString()];
  });
  const [clip] = await Promise.all([page.waitForEvent("download", { timeout: T }), page.click("#export button")]);
  await clip.saveAs(process.env.DOWNLOADS + "/front.mp4");
  // The same range played in the page.
  await page.click("#playbtn");
  await page.waitForFunction(() => {
    const v = document.getElementById("player");
    return v.readyState >= 2 && v.duration > 1 && v.videoWidth > 0;
  }, null, { timeout: T });
  const played = await page.evaluate(() => {
    const v = document.getElementById("player");
    return { duration: v.duration, width: v.videoWidth, height: v.videoHeight, error: v.error && v.error.message };
  });
  // A camera added from a real RTSP server: probed first, then written to the configuration.
  await page.click("#addcam summary");
  await page.fill("#addcam input[name=id]", "side");
  await page.fill("#addcam input[name=name]", "Side door");
  await page.fill("#addcam input[name=url]", newCamera);
  await page.click("#probebtn");
  await page.locator("#probeout").filter({ hasText: /fps/ }).waitFor({ timeout: T });
  const probe = await page.textContent("#probeout");
  await page.click("#addcam button:not([type=button])");
  await page.locator("#probeout").filter({ hasText: /added/ }).waitFor({ timeout: T });
  const added = await page.textContent("#probeout");
  const cookies = await context.cookies();
  say({ step: "down", reason, export_range: range, probe, added, played, phone_scroll_width: overflow, errors, cookies, all_urls: [...new Set(requests.map(r => r.url))] });
} finally {
  await browser.close();
}
