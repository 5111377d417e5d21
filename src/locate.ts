// Where a function was defined: the URL of its module, found through the in-process
// inspector (synchronous). JavaScript functions do not know their module, and ES
// modules cannot be enumerated, so this is how a function is sent by reference
// (module, export name), as Python's pickle sends `__module__` + `__qualname__`.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// Loaded on first use: only a process that sends functions needs the inspector.
const lazyRequire = createRequire(import.meta.url);
let session: import('node:inspector').Session | undefined;
const scriptUrls = new Map<string, string>();
const cache = new WeakMap<Function, string | null>();

function post<T = any>(method: string, params?: object): T {
  let out: T | undefined;
  let err: Error | null = null;
  (session as any).post(method, params ?? {}, (e: Error | null, r: T) => {
    err = e;
    out = r;
  });
  if (err) throw err;
  return out as T;
}

/**
 * Refresh the scriptId -> URL table until it knows `scriptId`. Best-effort coverage lists
 * the scripts that have run, at a few ms and without changing how V8 runs; a function's
 * module has run, so it is almost always there. Else Debugger.enable replays every parsed
 * script, but its first call costs tens of ms (over 100 with a large library loaded).
 */
function refreshScripts(scriptId: string): void {
  const { result } = post<{ result: Array<{ scriptId: string; url: string }> }>('Profiler.getBestEffortCoverage');
  for (const s of result) if (s.url) scriptUrls.set(s.scriptId, s.url);
  if (scriptUrls.has(scriptId)) return;
  post('Debugger.enable');
  post('Debugger.disable');
}

function connect(): void {
  if (session) return;
  const { Session } = lazyRequire('node:inspector') as typeof import('node:inspector');
  session = new Session();
  session.connect();
  session.on('Debugger.scriptParsed', (m) => {
    if (m.params.url) scriptUrls.set(m.params.scriptId, m.params.url);
  });
}

/**
 * Whether the module at `url` (as moduleOf reports it) has been loaded and run in this
 * process: then importing it again runs nothing.
 */
export function isLoaded(url: string): boolean {
  connect();
  const { result } = post<{ result: Array<{ scriptId: string; url: string }> }>('Profiler.getBestEffortCoverage');
  for (const s of result) if (s.url) scriptUrls.set(s.scriptId, s.url);
  for (const u of scriptUrls.values()) if (u === url) return true;
  return false;
}

/** The module URL (or CommonJS path) of the script that defines `fn`, if any. */
export function moduleOf(fn: Function): string | undefined {
  const hit = cache.get(fn);
  if (hit !== undefined) return hit ?? undefined;
  connect();
  const g = globalThis as { __mpLocateProbe?: Function };
  g.__mpLocateProbe = fn;
  let url: string | undefined;
  try {
    const { result } = post('Runtime.evaluate', { expression: 'globalThis.__mpLocateProbe' });
    const props = post('Runtime.getProperties', { objectId: result.objectId, ownProperties: true });
    post('Runtime.releaseObject', { objectId: result.objectId });
    const loc = props.internalProperties?.find((p: { name: string }) => p.name === '[[FunctionLocation]]');
    const scriptId: string | undefined = loc?.value?.value?.scriptId;
    if (scriptId) {
      if (!scriptUrls.has(scriptId)) refreshScripts(scriptId);
      url = scriptUrls.get(scriptId);
    }
  } finally {
    delete g.__mpLocateProbe;
  }
  if (url && (url.startsWith('node:') || url.startsWith('internal') || url.startsWith('evalmachine'))) url = undefined;
  cache.set(fn, url ?? null);
  return url;
}

const sources = new Map<string, string | null>();

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Whether the module at `url` appears to export `name`, read from its source text.
 * The receiving process imports a module only when it does, so that sending a
 * function never runs an unrelated module (a test file, a script) in a child.
 */
export function looksExported(url: string, name: string): boolean {
  if (!name || !/^[\w$]+$/.test(name)) return false;
  let text = sources.get(url);
  if (text === undefined) {
    try {
      text = readFileSync(url.startsWith('file:') ? fileURLToPath(url) : url, 'utf8');
    } catch {
      text = null;
    }
    sources.set(url, text);
  }
  if (text == null) return false;
  const n = escapeRegExp(name);
  return [
    new RegExp(`\\bexport\\s+(?:default\\s+)?(?:async\\s+)?(?:function\\s*\\*?|class|const|let|var)\\s*${n}\\b`),
    new RegExp(`\\bexport\\s*\\{[^}]*\\b${n}\\b[^}]*\\}`),
    new RegExp(`\\bexports\\.${n}\\s*=`),
    new RegExp(`\\bmodule\\.exports\\s*=[^;]*\\b${n}\\b`),
  ].some((re) => re.test(text!));
}
