// The ES module hook of module-trace-preload.mjs (it runs on node's loader thread).
import { appendFileSync } from 'node:fs';

let out;

export function initialize(data) {
  out = data.out;
}

export async function load(url, context, next) {
  const loaded = await next(url, context);
  if (!url.startsWith('node:')) appendFileSync(out, `${url}\n`);
  return loaded;
}
