/**
 * Headless Chromium for browser tests, driven over the DevTools protocol on a pipe
 * (`--remote-debugging-pipe`: JSON messages separated by NUL bytes on file descriptors 3 and
 * 4), so no WebSocket client and no npm package is needed. It opens a page, records console
 * errors, uncaught exceptions, failed loads and every network request, reads the rendered
 * text and takes a screenshot.
 */
import {spawn} from 'node:child_process';
import type {ChildProcess} from 'node:child_process';
import {existsSync, mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import type {Readable, Writable} from 'node:stream';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

/** The Chromium binary: `CHROMIUM_PATH`, else Debian's `/usr/bin/chromium` and friends. Throws a clear error when there is none. */
export function findChromium(): string {
  const fromEnv = process.env['CHROMIUM_PATH'];
  if (fromEnv !== undefined && fromEnv !== '') {
    if (existsSync(fromEnv)) return fromEnv;
    throw new Error(`CHROMIUM_PATH is set to ${fromEnv}, which does not exist.`);
  }
  const found = CANDIDATES.find((path) => existsSync(path));
  if (found === undefined) {
    throw new Error(
      `The browser test needs headless Chromium, but none was found (looked for ${CANDIDATES.join(', ')}). ` +
        'Install it with `apt-get update && apt-get install -y chromium` (CI does so in .ci/run), or set CHROMIUM_PATH.',
    );
  }
  return found;
}

/** What a page did while it loaded, and what it shows. */
export interface PageReport {
  /** `document.title` after load. */
  title: string;
  /** `document.body.innerText`: the text as rendered (hidden elements left out). */
  text: string;
  /** console.error/assert calls, uncaught exceptions and error log entries (failed loads, CSP, ...). */
  errors: string[];
  /** Every URL the page requested, the page itself included. */
  requests: string[];
  /** PNG bytes of the screenshot. */
  screenshot: Buffer;
  /** The page's full height in CSS pixels. */
  contentHeight: number;
}

/** Options of `inspectPage`. */
export interface InspectOptions {
  width?: number;
  /** Viewport height; with `fullPage` the screenshot covers the whole page instead. */
  height?: number;
  fullPage?: boolean;
  timeoutMs?: number;
}

/** Opens `url` in a fresh headless Chromium, waits for the load event, and reports. */
export async function inspectPage(url: string, options: InspectOptions = {}): Promise<PageReport> {
  const width = options.width ?? 1280;
  const height = options.height ?? 1800;
  const browser = Browser.launch();
  const timeoutMs = options.timeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Chromium did not finish within ${timeoutMs} ms.\n${browser.stderrTail()}`)), timeoutMs);
  });
  try {
    return await Promise.race([drive(browser, url, width, height, options.fullPage ?? false), timeout, browser.exited]);
  } finally {
    clearTimeout(timer);
    await browser.close();
  }
}

async function drive(browser: Browser, url: string, width: number, height: number, fullPage: boolean): Promise<PageReport> {
  const {targetId} = (await browser.send('Target.createTarget', {url: 'about:blank'})) as {targetId: string};
  const {sessionId} = (await browser.send('Target.attachToTarget', {targetId, flatten: true})) as {sessionId: string};
  const page = (method: string, params: object = {}) => browser.send(method, params, sessionId);
  const errors: string[] = [];
  const requests: string[] = [];
  let loaded!: () => void;
  const load = new Promise<void>((resolve) => (loaded = resolve));
  browser.onEvent((message) => {
    if (message.sessionId !== sessionId) return;
    const params = message.params as Record<string, any>;
    switch (message.method) {
      case 'Runtime.consoleAPICalled':
        if (params['type'] === 'error' || params['type'] === 'assert') {
          errors.push(`console.${params['type']}: ${(params['args'] as any[]).map((a) => a.value ?? a.description ?? '').join(' ')}`);
        }
        break;
      case 'Runtime.exceptionThrown': {
        const details = params['exceptionDetails'];
        errors.push(`Uncaught: ${details?.exception?.description ?? details?.text ?? 'exception'}`);
        break;
      }
      case 'Log.entryAdded':
        if (params['entry']?.level === 'error') errors.push(`${params['entry'].source}: ${params['entry'].text} ${params['entry'].url ?? ''}`.trim());
        break;
      case 'Network.requestWillBeSent':
        requests.push(String(params['request']?.url));
        break;
      case 'Page.loadEventFired':
        loaded();
        break;
    }
  });
  await page('Runtime.enable');
  await page('Log.enable');
  await page('Network.enable');
  await page('Page.enable');
  await page('Emulation.setDeviceMetricsOverride', {width, height, deviceScaleFactor: 1, mobile: false});
  const navigation = (await page('Page.navigate', {url})) as {errorText?: string};
  if (navigation.errorText) throw new Error(`Chromium could not open ${url}: ${navigation.errorText}`);
  await load;
  const evaluate = async (expression: string) => ((await page('Runtime.evaluate', {expression, returnByValue: true})) as {result: {value: unknown}}).result.value;
  const title = String(await evaluate('document.title'));
  const text = String(await evaluate('document.body ? document.body.innerText : ""'));
  const contentHeight = Number(await evaluate('Math.ceil(document.documentElement.scrollHeight)'));
  if (fullPage) await page('Emulation.setDeviceMetricsOverride', {width, height: contentHeight, deviceScaleFactor: 1, mobile: false});
  const shot = (await page('Page.captureScreenshot', {format: 'png'})) as {data: string};
  return {title, text, errors, requests, screenshot: Buffer.from(shot.data, 'base64'), contentHeight};
}

interface Message {
  id?: number;
  method?: string;
  params?: unknown;
  result?: unknown;
  error?: {message: string};
  sessionId?: string;
}

/** One Chromium process and its DevTools pipe. */
class Browser {
  readonly #child: ChildProcess;
  readonly #profile: string;
  readonly #pending = new Map<number, {resolve: (value: unknown) => void; reject: (error: Error) => void}>();
  readonly #listeners: ((message: Message) => void)[] = [];
  #nextId = 1;
  #buffer = '';
  #stderr = '';
  #closed = false;
  /** Rejects if Chromium exits before `close()`. */
  readonly exited: Promise<never>;

  static launch(): Browser {
    return new Browser(findChromium());
  }

  private constructor(binary: string) {
    this.#profile = mkdtempSync(join(tmpdir(), 'chromium-profile-'));
    this.#child = spawn(
      binary,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
        '--disable-extensions',
        '--hide-scrollbars',
        '--mute-audio',
        `--user-data-dir=${this.#profile}`,
        '--remote-debugging-pipe',
        'about:blank',
      ],
      {stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe']},
    );
    this.#child.stderr!.setEncoding('utf8');
    this.#child.stderr!.on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-4000);
    });
    const output = this.#child.stdio[4] as Readable;
    output.setEncoding('utf8');
    output.on('data', (chunk: string) => this.#receive(chunk));
    this.exited = new Promise<never>((_, reject) => {
      const fail = (why: string) => {
        const error = new Error(`Chromium ${why}.\n${this.stderrTail()}`);
        for (const pending of this.#pending.values()) pending.reject(error);
        this.#pending.clear();
        if (!this.#closed) reject(error);
      };
      this.#child.on('error', (error) => fail(`could not start: ${error.message}`));
      this.#child.on('exit', (code, signal) => fail(`exited (code ${code}, signal ${signal})`));
    });
    this.exited.catch(() => undefined);
  }

  send(method: string, params: object = {}, sessionId?: string): Promise<unknown> {
    const id = this.#nextId++;
    const message = JSON.stringify({id, method, params, ...(sessionId ? {sessionId} : {})});
    return new Promise((resolve, reject) => {
      this.#pending.set(id, {resolve, reject});
      (this.#child.stdio[3] as Writable).write(`${message}\0`);
    });
  }

  onEvent(listener: (message: Message) => void): void {
    this.#listeners.push(listener);
  }

  stderrTail(): string {
    return this.#stderr
      .split('\n')
      .filter((line) => line !== '' && !line.includes('dbus'))
      .slice(-15)
      .join('\n');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const exit = new Promise<void>((resolve) => {
      if (this.#child.exitCode !== null || this.#child.signalCode !== null) resolve();
      else this.#child.once('exit', () => resolve());
    });
    this.send('Browser.close').catch(() => undefined);
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
    await exit;
    clearTimeout(timer);
    rmSync(this.#profile, {recursive: true, force: true});
  }

  #receive(chunk: string): void {
    this.#buffer += chunk;
    let end: number;
    while ((end = this.#buffer.indexOf('\0')) !== -1) {
      const message = JSON.parse(this.#buffer.slice(0, end)) as Message;
      this.#buffer = this.#buffer.slice(end + 1);
      if (message.id !== undefined) {
        const pending = this.#pending.get(message.id);
        this.#pending.delete(message.id);
        if (message.error) pending?.reject(new Error(`DevTools ${message.error.message}`));
        else pending?.resolve(message.result);
      } else {
        for (const listener of this.#listeners) listener(message);
      }
    }
  }
}
