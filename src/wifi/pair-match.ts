// Which pair records may belong to a phone heard over mDNS (reference
// tunnel-wifi-remote §3.1): the authTag rule when the TXT record carries
// `identifier` and tags (a private Wi-Fi address), else the MAC before `@`
// against each record's WiFiMACAddress. The authTag names the host, not the
// phone, so it can give several candidates; the session that follows tells
// which phone it is (UniqueDeviceID).
import { isPlistDict, type PlistDict } from '../protocol/plist-codec.js';
import { authTag, authTagsOf, macOfInstance, MAX_IDENTIFIER_LENGTH, normalizeMac } from '../protocol/mobdev-auth-tag.js';

export interface Candidate {
  udid: string;
  record: PlistDict;
}

export interface RecordSource {
  list(): Promise<string[]>;
  readRecord(udid: string): Promise<PlistDict>;
}

/**
 * The store's records, read at most every RECORDS_TTL_MS (or after
 * invalidate(): a pairing was saved): a neighbour announcing hundreds of
 * names a second must not make the daemon read every record for each.
 */
export const RECORDS_TTL_MS = 5_000;

export class CachedRecords {
  private cached?: Promise<Candidate[]>;
  private readAt = 0;

  constructor(private readonly store: RecordSource) {}

  invalidate(): void {
    this.cached = undefined;
  }

  all(): Promise<Candidate[]> {
    if (!this.cached || Date.now() - this.readAt >= RECORDS_TTL_MS) {
      this.readAt = Date.now();
      this.cached = readAll(this.store);
    }
    return this.cached;
  }
}

async function readAll(store: RecordSource): Promise<Candidate[]> {
  const records: Candidate[] = [];
  for (const udid of await store.list()) {
    try {
      const record = await store.readRecord(udid);
      if (isPlistDict(record) && typeof record.HostID === 'string') records.push({ udid, record });
    } catch {
      // an unreadable record matches nothing; the store logs its own trouble
    }
  }
  return records;
}

export async function candidatesFor(source: RecordSource | CachedRecords, label: string, txt: Map<string, string>): Promise<Candidate[]> {
  const records = source instanceof CachedRecords ? await source.all() : await readAll(source);
  const identifier = txt.get('identifier');
  const tags = authTagsOf(txt);
  if (identifier && identifier.length <= MAX_IDENTIFIER_LENGTH && tags.length > 0) {
    const wanted = new Set(tags);
    const tagged = records.filter((c) => wanted.has(authTag(c.record.HostID as string, identifier)));
    if (tagged.length > 0) return tagged;
  }
  const mac = macOfInstance(label);
  if (!mac) return [];
  return records.filter((c) => typeof c.record.WiFiMACAddress === 'string' && normalizeMac(c.record.WiFiMACAddress) === mac);
}
