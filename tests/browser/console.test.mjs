// The console in a real browser: Debian's chromium, driven by playwright-core
// (which never downloads a browser here). Starts `switchyard up` on a fresh
// data dir, drives it through the HTTP API, and checks what the console
// shows. Screenshots go to target/console-screenshots/.
//
//   SWITCHYARD_BIN=target/debug/switchyard node tests/browser/console.test.mjs
//
// Every wait is for a condition, with a deadline; nothing sleeps to sync.

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateSync, crc32 } from "node:zlib";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const bin = process.env.SWITCHYARD_BIN ?? join(root, "target/debug/switchyard");
const shots = process.env.SCREENSHOT_DIR ?? join(root, "target/console-screenshots");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
mkdirSync(shots, { recursive: true });

const started = Date.now();
const failures = [];
function check(ok, what) {
  if (ok) {
    console.log(`  ok   ${what}`);
  } else {
    console.log(`  FAIL ${what}`);
    failures.push(what);
  }
}

/// Waits until `probe()` returns a truthy value, or fails at the deadline.
async function until(what, probe, timeoutMs = 15000, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/// A small valid PNG (RGB gradient), so the image processor makes thumbnails.
function png(width, height) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body) >>> 0);
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) {
      raw[row + 1 + x * 3] = (x * 255) / width;
      raw[row + 2 + x * 3] = (y * 255) / height;
      raw[row + 3 + x * 3] = 160;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

// --- switchyard up on a fresh data dir -------------------------------------
const dataDir = mkdtempSync(join(tmpdir(), "switchyard-console-"));
const up = spawn(bin, ["up", "--data-dir", dataDir, "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
const base = await new Promise((res, rej) => {
  let out = "";
  const timer = setTimeout(() => rej(new Error("switchyard up printed no address within 20 s")), 20000);
  up.stdout.on("data", (d) => {
    out += d;
    const m = out.match(/API on (http:\/\/127\.0\.0\.1:\d+)/);
    if (m) {
      clearTimeout(timer);
      res(m[1]);
    }
  });
  up.on("exit", (code) => rej(new Error(`switchyard up exited with ${code}`)));
});
console.log(`switchyard up at ${base} (data dir ${dataDir})`);

async function api(path, body, contentType = "application/json") {
  const answer = await fetch(base + path, {
    method: "POST",
    headers: { "content-type": contentType },
    body: contentType === "application/json" ? JSON.stringify(body) : body,
  });
  const json = await answer.json();
  if (answer.status !== 202) throw new Error(`POST ${path}: ${answer.status} ${JSON.stringify(json)}`);
  return json;
}
const order = (order_id, extra = {}) =>
  api("/orders", {
    order_id,
    customer_id: "c-1",
    items: [{ sku: "mug", quantity: 2, unit_price_cents: 1200 }],
    currency: "EUR",
    ...extra,
  });

const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
let exitCode = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const dialogs = [];
  page.on("dialog", async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });
  const cspErrors = [];
  page.on("console", (m) => {
    if (m.type() === "error") cspErrors.push(m.text());
  });

  // --- orders and images through the API -----------------------------------
  const placed = [];
  for (const id of ["o-1", "o-2", "o-3"]) placed.push(await order(id));
  await api("/orders/o-2/pay", { payment_id: "p-2", amount_cents: 2400 });
  const upload = await api("/orders/o-1/images", png(320, 240), "image/png");

  // --- flow: the counts ----------------------------------------------------
  console.log("flow page");
  await page.goto(base + "/");
  const count = (edge) =>
    page.$eval(`[data-edge="${edge}"]`, (e) => Number(e.textContent)).catch(() => -1);
  // The page refreshes itself every 2 s: wait for it to show the work done.
  await until("the flow page to count the published orders", async () => (await count("published bus orders")) >= 4);
  await until("the flow page to count the order processor's work", async () => (await count("succeeded order-processor")) >= 4);
  await until("the flow page to count the image", async () => (await count("succeeded image-processor")) >= 1);
  check((await count("published bus orders")) >= 4, "flow page counts the events published to bus orders");
  check((await count("routed order-processor")) >= 4, "flow page counts what rule order-lifecycle matched");
  check((await count("published topic images")) === 1, "flow page counts the upload on topic images");
  check((await page.locator('.node.queue[data-queue="order-processor"]').count()) === 1, "flow page draws queue order-processor");
  await page.screenshot({ path: join(shots, "flow.png"), fullPage: true });

  // --- events: the live tail -----------------------------------------------
  console.log("events page");
  await page.goto(base + "/console/events");
  await until("the tail to connect", async () => (await page.textContent("#tail-status")).includes("connected"), 5000);
  const t0 = Date.now();
  const fresh = await order("o-tail");
  await page.waitForSelector(`#tail tr[data-event-id="${fresh.event_id}"]`, { timeout: 2000 });
  const shownIn = Date.now() - t0;
  check(shownIn <= 2000, `the tail shows a new event within 2 s (${shownIn} ms)`);
  await page.screenshot({ path: join(shots, "events.png"), fullPage: true });

  // The filter box: a pattern through the rule engine, and an invalid one.
  await page.goto(base + "/console/events?pattern=" + encodeURIComponent('{"detail-type":["OrderPaid"]}'));
  const types = await page.$$eval("#tail tr td:nth-child(2)", (tds) => tds.map((t) => t.textContent));
  check(types.length >= 1 && types.every((t) => t === "OrderPaid"), `the filter keeps only OrderPaid (${types.join(",")})`);
  await page.goto(base + "/console/events?pattern=" + encodeURIComponent('{"detail-type":"OrderPaid"}'));
  const invalid = await page.textContent("#pattern-error").catch(() => "");
  check(/Invalid pattern: .+/.test(invalid), `an invalid pattern shows the engine's error (${invalid.trim()})`);

  // --- lineage: OrderPlaced through to OrderStatusChanged ---------------------
  console.log("lineage page");
  const lineageUrl = `${base}/console/events/${placed[0].event_id}`;
  await until("the lineage to reach OrderStatusChanged", async () => {
    await page.goto(lineageUrl);
    return (await page.locator('.lineage-event[data-detail-type="OrderStatusChanged"] .hop[data-hop="handler"]').count()) > 0;
  });
  const hops = await page.$$eval(".lineage-event", (events) =>
    events.map((e) => ({
      type: e.dataset.detailType,
      hops: [...e.querySelectorAll(".hop")].map((h) => h.dataset.hop),
    })),
  );
  const first = hops[0];
  check(first?.type === "OrderPlaced", "the lineage starts with the OrderPlaced");
  for (const hop of ["published", "matched", "handler", "table change"]) {
    check(first?.hops.includes(hop), `the OrderPlaced's lineage has a ${hop} hop`);
  }
  check(hops.some((e) => e.type === "OrderStatusChanged"), "the lineage reaches the derived OrderStatusChanged");
  const lineageText = await page.textContent(".lineage");
  check(lineageText.includes("rule order-lifecycle") && lineageText.includes("queue order-processor"), "the lineage names the rule and the queue");
  await page.screenshot({ path: join(shots, "lineage.png"), fullPage: true });

  // --- a poison message in the DLQ, redriven -----------------------------------
  console.log("queues: DLQ and redrive");
  // A payment for an order that never comes is retried until its receives run out.
  const poison = await api("/orders/ghost-1/pay", { payment_id: "p-ghost", amount_cents: 100 });
  const dlq = `${base}/console/queues/order-processor-dlq`;
  const article = await until(
    "the poison message to reach order-processor-dlq",
    async () => {
      await page.goto(dlq);
      const found = page.locator("article.message", { hasText: poison.event_id });
      return (await found.count()) === 1 ? found : null;
    },
    30000,
    250,
  );
  const messageId = await article.getAttribute("data-message-id");
  const reason = (await article.locator('[data-field="reason"]').textContent()).trim();
  check(reason.length > 0 && reason !== "(none recorded)", `the DLQ message shows its failure reason (${reason})`);
  check(Number(await article.locator('[data-field="receive-count"]').textContent()) >= 1, "the DLQ message shows its receive count");
  await page.screenshot({ path: join(shots, "dlq.png"), fullPage: true });
  await article.locator('[data-action="redrive"]').click();
  await page.waitForSelector("#confirm");
  await page.screenshot({ path: join(shots, "redrive-confirm.png"), fullPage: true });
  await page.click("#confirm");
  await page.waitForURL(/\/console\/queues\/order-processor\?/);
  const notice = await page.textContent(".notice");
  check(notice.includes(`Moved message ${messageId}`), `redrive says what happened (${notice.trim()})`);
  check((await page.locator(`article.message[data-message-id="${messageId}"]`).count()) === 1, "the queue page shows the redriven message back in order-processor");
  await page.screenshot({ path: join(shots, "redriven.png"), fullPage: true });
  // A forged POST (no token, from another origin) changes nothing.
  const forged = await fetch(`${dlq}/redrive-all`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", origin: "http://evil.example" },
    body: "token=guess",
  });
  check(forged.status === 403, `a cross-origin POST is refused (${forged.status})`);
  const tokenless = await fetch(`${dlq}/redrive-all`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", origin: base },
    body: "token=guess",
  });
  check(tokenless.status === 403, `a same-origin POST without the token is refused (${tokenless.status})`);

  // --- an order's page with its thumbnails ------------------------------------
  console.log("order page");
  await until("order o-1's thumbnail to load", async () => {
    await page.goto(`${base}/console/orders/o-1`);
    const img = page.locator(`figure.image[data-image-id="${upload.image_id}"] img.thumb`);
    if ((await img.count()) === 0) return false;
    return img.first().evaluate((i) => i.complete && i.naturalWidth > 0);
  });
  check(true, "order o-1's page shows its thumbnail, loaded");
  const thumb = await page.locator("img.thumb").first().getAttribute("src");
  const blob = await fetch(base + thumb);
  check(/^image\/(jpeg|webp)$/.test(blob.headers.get("content-type")) && blob.headers.get("x-content-type-options") === "nosniff",
    `the thumbnail is served as ${blob.headers.get("content-type")} with nosniff`);
  check((await page.locator(".history tbody tr").count()) >= 1, "the order page shows its state history");
  await page.screenshot({ path: join(shots, "order.png"), fullPage: true });
  await page.goto(`${base}/console/images`);
  await page.screenshot({ path: join(shots, "images.png"), fullPage: true });
  await page.goto(`${base}/console/orders`);
  await page.screenshot({ path: join(shots, "orders.png"), fullPage: true });

  // --- a hostile event renders as text ----------------------------------------
  console.log("hostile event");
  const hostileScript = "<script>alert('xss')</script>";
  const hostileImg = '"><img src=x onerror="alert(1)">';
  const hostile = await order("o-hostile", {
    customer_id: hostileScript,
    items: [{ sku: hostileImg, quantity: 1, unit_price_cents: 100 }],
  });
  const before = dialogs.length;
  for (const url of [`/console/events/${hostile.event_id}`, "/console/orders/o-hostile", "/console/orders"]) {
    await until(`${url} to render`, async () => (await page.goto(base + url)).status() === 200);
    const inert = await page.evaluate(() => ({
      inlineScripts: document.querySelectorAll("script:not([src])").length,
      strayImages: document.querySelectorAll('img[src="x"], [onerror]').length,
      text: document.body.textContent,
    }));
    check(inert.inlineScripts === 0 && inert.strayImages === 0, `${url}: the hostile values created no element`);
    check(inert.text.includes(hostileScript) || inert.text.includes(hostileImg), `${url}: the hostile values show as text`);
  }
  // The live tail too: a hostile event arriving while the page is open.
  await page.goto(base + "/console/events");
  await until("the tail to connect", async () => (await page.textContent("#tail-status")).includes("connected"), 5000);
  const hostile2 = await order("o-hostile-2", { customer_id: hostileImg });
  await page.waitForSelector(`#tail tr[data-event-id="${hostile2.event_id}"]`, { timeout: 2000 });
  check((await page.evaluate(() => document.querySelectorAll('img[src="x"], [onerror], script:not([src])').length)) === 0, "the tail adds hostile events as text");
  check(dialogs.length === before && dialogs.length === 0, `no dialog opened (${dialogs.join(" | ")})`);
  await page.screenshot({ path: join(shots, "hostile.png"), fullPage: true });
  check(!cspErrors.some((e) => /Content Security Policy/i.test(e)), `the pages break no CSP rule (${cspErrors.join(" | ")})`);
} catch (e) {
  console.log(`  FAIL ${e.stack ?? e}`);
  failures.push(String(e));
} finally {
  await browser.close();
  up.kill("SIGTERM");
  await new Promise((r) => (up.exitCode !== null ? r() : up.on("exit", r)));
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(`browser test: ${failures.length === 0 ? "passed" : `${failures.length} failure(s)`} in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${shots}`);
exitCode = failures.length === 0 ? 0 : 1;
process.exit(exitCode);
