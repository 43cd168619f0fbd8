// The module hooks of no-addon-preload.mjs (they run on node's loader
// thread): resolving the addon's modules, or a .node file, records the
// attempt and throws.
import { appendFileSync } from 'node:fs';

let marker;

export function initialize(data) {
  marker = data?.marker;
}

const FORBIDDEN = /\/src\/native\/(?:addon|testing)\.[jt]s$|\.node$/;

export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (FORBIDDEN.test(resolved.url)) {
    if (marker) appendFileSync(marker, `import ${resolved.url} from ${context.parentURL}\n`);
    throw new Error(`no-addon: ${resolved.url} may not load here (imported from ${context.parentURL})`);
  }
  return resolved;
}
