// Opens llama-server's web UI in headless Chromium, sends one chat message and watches the
// assistant's reply appear in the page while it streams; saves a screenshot.
//
//   node tests/server/browser.mjs URL SCREENSHOT.png UI_SRC CHROMIUM
//
// UI_SRC: the built UI's source tree (tests/server/ui_build.sh ui_src=), whose node_modules hold
// playwright-core (a dependency of the UI's own tests); CHROMIUM: the browser to drive (Debian's
// /usr/bin/chromium). Prints one JSON line of what it saw; exit 0 when the reply streamed in.
import { createRequire } from 'node:module';
import path from 'node:path';

const [url, screenshot, uiSrc, chromiumPath] = process.argv.slice(2);
if (!chromiumPath) {
	console.error('usage: node browser.mjs URL SCREENSHOT.png UI_SRC CHROMIUM');
	process.exit(2);
}
const require = createRequire(path.join(uiSrc, 'package.json'));
const { chromium } = require('playwright-core');

const message = 'Tell me a long story about a brave little robot.';
const browser = await chromium.launch({
	executablePath: chromiumPath,
	args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage']
});
const result = { url, message };
let ok = false;
const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
try {
	const consoleErrors = [];
	page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
	// The chat request and its server-sent events, as the browser received them.
	const chat = new Promise((resolve) => {
		page.on('requestfinished', async (req) => {
			if (!req.url().includes('/chat/completions')) return;
			const res = await req.response();
			const body = res ? await res.text() : '';
			resolve({
				status: res?.status(),
				contentType: res?.headers()['content-type'],
				events: body.split('\n').filter((l) => l.startsWith('data: ')).length
			});
		});
	});

	await page.goto(url, { waitUntil: 'networkidle' });
	// The message box: a textarea or a contenteditable textbox, depending on the UI's settings.
	const input = page.locator('textarea, [contenteditable="true"][role="textbox"]').first();
	await input.waitFor({ state: 'visible', timeout: 90000 });

	// Every change of the assistant message's text, with a timestamp, recorded in the page.
	await page.evaluate(() => {
		window.__replyLengths = [];
		const observer = new MutationObserver(() => {
			const nodes = document.querySelectorAll('.chat-message-assistant');
			const text = nodes.length ? nodes[nodes.length - 1].innerText : '';
			const seen = window.__replyLengths;
			if (!seen.length || seen[seen.length - 1].len !== text.length) {
				seen.push({ t: performance.now(), len: text.length });
			}
		});
		observer.observe(document.body, { childList: true, subtree: true, characterData: true });
	});

	await input.click();
	await page.keyboard.type(message);
	await page.keyboard.press('Enter');

	const sse = await Promise.race([
		chat,
		new Promise((_, reject) => setTimeout(() => reject(new Error('no chat request seen in 120 s')), 120000))
	]);
	await page.waitForTimeout(1000); // let the last chunk render
	const reply = page.locator('.chat-message-assistant').last();
	const replyText = (await reply.innerText()).trim();
	const lengths = await page.evaluate(() => window.__replyLengths);
	const growing = new Set(lengths.filter((l) => l.len > 0).map((l) => l.len)).size;
	const userShown = (await page.locator('body').innerText()).includes(message);
	await page.screenshot({ path: screenshot, fullPage: false });

	Object.assign(result, {
		sse,
		userShown,
		replyChars: replyText.length,
		replyStart: replyText.slice(0, 120),
		distinctReplyLengths: growing,
		consoleErrors: consoleErrors.slice(0, 5),
		screenshot
	});
	// Streamed: the server answered with an event stream of many events, and the page showed
	// the reply at several lengths on its way to the final text.
	ok = sse.status === 200 && /event-stream/.test(sse.contentType ?? '') && sse.events > 2 &&
		userShown && replyText.length > 0 && growing >= 3;
} catch (e) {
	result.error = String(e);
	await page.screenshot({ path: screenshot }).catch(() => {});
} finally {
	await browser.close();
}
result.ok = ok;
console.log(JSON.stringify(result));
process.exit(ok ? 0 : 1);
