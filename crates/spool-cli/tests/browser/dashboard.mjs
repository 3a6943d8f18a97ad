// Drives the dashboard in headless Chromium as an operator would: checks the overview's
// numbers against `spool stats --json`, retries a failed job, pauses a queue, searches jobs by
// tag among the pending and the completed ones, visits every page, and saves screenshots.
// Fails if a page logs a JavaScript error.
//
// Run by tests/dashboard.rs with: DASHBOARD_URL, STATS_FILE (the stats JSON), FAILED_ID,
// PAUSE_QUEUE, TAG, COMPLETED_ID and PENDING_TAGGED_ID (the completed and the pending job with
// that tag), SHOT_DIR, CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const url = env("DASHBOARD_URL");
const stats = JSON.parse(readFileSync(env("STATS_FILE"), "utf8"));
const failedId = env("FAILED_ID");
const pauseQueue = env("PAUSE_QUEUE");
const tag = env("TAG");
const completedId = env("COMPLETED_ID");
const pendingTaggedId = env("PENDING_TAGGED_ID");
const shots = env("SHOT_DIR");
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
const problems = [];
const check = (ok, what) => { if (!ok) problems.push(what); };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
  page.on("dialog", (d) => d.accept());

  // Overview: the window's totals are those of `spool stats --json`.
  await page.goto(url);
  await page.waitForSelector('[data-stat="completed"]');
  const sum = (key) => stats.queues.reduce((n, q) => n + q[key], 0);
  const stat = async (name) => (await page.textContent(`[data-stat="${name}"]`)).trim();
  check(await stat("completed") === String(sum("completed")), `completed: page ${await stat("completed")}, stats ${sum("completed")}`);
  check(await stat("failed") === String(sum("failed")), `failed: page ${await stat("failed")}, stats ${sum("failed")}`);
  for (const q of stats.queues) {
    const row = page.locator(`main table tr[data-queue="${q.name}"]`);
    const cells = await row.locator("td").allTextContents();
    check(cells[1] === String(q.completed) && cells[2] === String(q.failed),
      `queue ${q.name}: page ${cells.slice(1, 3)}, stats ${q.completed}/${q.failed}`);
  }
  // Live: the indicator turns on once the event stream delivered.
  await page.waitForSelector("#live.on", { timeout: 10000 });
  await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });

  // Failed jobs: retry one.
  await page.goto(`${url}#/jobs?state=failed`);
  const failedRow = page.locator(`tr[data-id="${failedId}"]`);
  await failedRow.waitFor();
  await page.screenshot({ path: `${shots}/failed.png`, fullPage: true });
  await failedRow.locator('button[data-action="retry"]').click();
  await page.waitForFunction((id) => !document.querySelector(`tr[data-id="${id}"]`), failedId, { timeout: 10000 });

  // The retried job's page.
  await page.goto(`${url}#/job/${encodeURIComponent(failedId)}`);
  await page.waitForSelector("main dl");
  check((await page.textContent("main dl")).includes(failedId), "the job page names the job");
  await page.screenshot({ path: `${shots}/job.png`, fullPage: true });

  // Jobs: search by tag on the completed tab (the form), then on the pending tab (the tab keeps
  // the search); each finds its one tagged job.
  await page.goto(`${url}#/jobs?state=completed`);
  await page.waitForSelector("#job-search");
  await page.selectOption("#job-search-by", "tag");
  await page.fill("#job-search", tag);
  await page.click('main form button[type="submit"]');
  await page.waitForSelector(`tr[data-id="${completedId}"]`, { timeout: 10000 });
  const completedRows = await page.locator("main tbody tr").count();
  check(completedRows === 1, `completed jobs tagged ${tag}: ${completedRows} rows`);
  const tags = await page.getAttribute(`tr[data-id="${completedId}"] td[data-tags]`, "data-tags");
  check(tags === tag, `the completed job's tags: ${tags}`);
  await page.screenshot({ path: `${shots}/completed.png`, fullPage: true });
  await page.click('a[data-state="pending"]');
  await page.waitForSelector(`tr[data-id="${pendingTaggedId}"]`, { timeout: 10000 });
  const pendingRows = await page.locator("main tbody tr").count();
  check(pendingRows === 1, `pending jobs tagged ${tag}: ${pendingRows} rows`);
  // The completed job's own page shows its record.
  await page.goto(`${url}#/job/${encodeURIComponent(completedId)}`);
  await page.waitForSelector("main dl");
  const record = await page.textContent("main dl");
  check(record.includes("completed") && record.includes(tag), `the completed job's page: ${record}`);

  // Queues: pause one.
  await page.goto(`${url}#/queues`);
  const queueRow = page.locator(`tr[data-queue="${pauseQueue}"]`);
  await queueRow.waitFor();
  await queueRow.locator('button[data-action="pause"]').click();
  await page.locator(`tr[data-queue="${pauseQueue}"] .pill.paused`).waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${shots}/queues.png`, fullPage: true });

  // The schedule the worker runs, with its next run ahead.
  await page.goto(`${url}#/schedules`);
  const schedule = page.locator(`tr[data-schedule="${process.env.SCHEDULE}"]`);
  await schedule.waitFor({ timeout: 10000 });
  const next = await schedule.locator(".next-run").textContent();
  if (!/\(in /.test(next)) problems.push(`the schedule's next run is not ahead: ${next}`);
  await page.screenshot({ path: `${shots}/schedules.png`, fullPage: true });

  for (const name of ["batches", "workers", "jobs"]) {
    await page.goto(`${url}#/${name}`);
    await page.waitForSelector("main h1");
    await page.waitForTimeout(300);
    await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  }
} finally {
  await browser.close();
}
const failures = [...problems, ...errors];
if (failures.length) {
  console.error(failures.join("\n"));
  process.exit(1);
}
console.log("dashboard: every check passed");
