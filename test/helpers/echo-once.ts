// One round trip through a local TCP port that echoes (a forward to the
// sim's echo service): sends `text`, returns what came back. Loads nothing
// native, so the no-addon tests may use it.
import { once } from 'node:events';
import net from 'node:net';

export async function echoThrough(port: number, text: string): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  await once(s, 'connect');
  s.write(text);
  let got = '';
  for await (const chunk of s) {
    got += String(chunk);
    if (got.length >= text.length) break;
  }
  s.destroy();
  return got;
}
