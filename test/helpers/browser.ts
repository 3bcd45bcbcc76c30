import { createRequire } from "node:module";
import { type Browser, chromium, type Page } from "playwright-core";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

/** Debian's Chromium (`apt-get install chromium`, which `.ci/run` does when it is missing): nothing is downloaded. */
export const CHROMIUM = "/usr/bin/chromium";

export interface ConsoleBrowser {
  browser: Browser;
  /** A fresh page in a context of its own (no storage shared with other pages), failing on any script error. */
  page(options?: { forAxe?: boolean }): Promise<Page & { problems: string[] }>;
  close(): Promise<void>;
}

/**
 * Headless Chromium driven by playwright-core. Every page records script errors, failed requests of its own
 * origin and Content-Security-Policy violations in `problems`, which a test asserts is empty.
 */
export async function startBrowser(): Promise<ConsoleBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Tests run as root in CI, where Chromium's sandbox cannot start.
    args: ["--no-sandbox"],
  });
  return {
    browser,
    async page(options = {}) {
      // axe-core is injected as a script of the test's own, which the console's CSP rightly refuses: only a
      // page made for an accessibility check bypasses it.
      const context = await browser.newContext({
        viewport: { width: 1280, height: 900 },
        bypassCSP: options.forAxe,
      });
      const page = (await context.newPage()) as Page & { problems: string[] };
      page.problems = [];
      page.on("pageerror", (err) => page.problems.push(`page error: ${err.message}`));
      page.on("console", (msg) => {
        // A 4xx answer the page asked for on purpose (a wrong key) shows as a console error; the page's own
        // message is what the test checks, so only script errors and CSP violations are problems here.
        if (msg.type() === "error" && !/status of 4\d\d/.test(msg.text()))
          page.problems.push(`console: ${msg.text()}`);
      });
      return page;
    },
    async close() {
      await browser.close();
    },
  };
}

/** axe-core's violations of impact `critical` on the page as it is now, as `rule: target` strings. */
export async function criticalViolations(page: Page): Promise<string[]> {
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const axe = (
      globalThis as unknown as {
        axe: {
          run(): Promise<{
            violations: Array<{ id: string; impact: string; nodes: Array<{ target: string[] }> }>;
          }>;
        };
      }
    ).axe;
    return (await axe.run()).violations;
  });
  return violations
    .filter((v) => v.impact === "critical")
    .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(" ")}`));
}
