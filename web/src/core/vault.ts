// The vault keeps the client core's rows in IndexedDB, sealed at rest.
//
// Two layers protect what is stored:
//
//  1. The Go core seals every value itself (XChaCha20-Poly1305 under its
//     store key, bound to the row), exactly as it does in SQLite for the
//     CLI: nothing reaches this file unsealed.
//  2. This vault seals each value again with AES-256-GCM under a WebCrypto
//     key made non-extractable: script can use it but never read it, and
//     IndexedDB keeps it as an opaque CryptoKey. The row id is the
//     associated data, so a value cannot be moved to another row. The
//     core's store key is kept here too, sealed the same way.
//
// A transaction of the core arrives as one call to persist(), written in
// one IndexedDB transaction: all of it, or none.
//
// Security considerations: the browser keeps the non-extractable key in
// its profile on disk, next to the data, so the vault protects against
// reading the IndexedDB files elsewhere, against script that can read
// storage but not run in the page, and against any export of the key; it
// does not protect against an attacker who can run code in this page or
// has the whole browser profile. The row ids (table and row key) are
// readable; the core chooses them so that they reveal nothing secret.

const DB_VERSION = 1;
const ROWS = 'rows';
const KEYS = 'keys';

interface Sealed {
  iv: Uint8Array<ArrayBuffer>;
  ct: ArrayBuffer;
}

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

const enc = new TextEncoder();

export class Vault {
  private constructor(
    private db: IDBDatabase,
    private key: CryptoKey,
  ) {}

  /** Opens (creating if needed) the vault named name. */
  static async open(name = 'hush'): Promise<Vault> {
    const open = indexedDB.open(name, DB_VERSION);
    open.onupgradeneeded = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains(ROWS)) db.createObjectStore(ROWS);
      if (!db.objectStoreNames.contains(KEYS)) db.createObjectStore(KEYS);
    };
    const db = await req(open);
    let key = (await req(db.transaction(KEYS).objectStore(KEYS).get('wrap'))) as CryptoKey | undefined;
    if (!key) {
      key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
      const tx = db.transaction(KEYS, 'readwrite');
      // add, not put: if another tab made a key first, keep that one.
      tx.objectStore(KEYS).add(key, 'wrap');
      try {
        await done(tx);
      } catch {
        key = (await req(db.transaction(KEYS).objectStore(KEYS).get('wrap'))) as CryptoKey;
      }
    }
    return new Vault(db, key);
  }

  private async seal(id: string, value: Uint8Array<ArrayBuffer>): Promise<Sealed> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: enc.encode('hush vault v1\0' + id) }, this.key, value);
    return { iv, ct };
  }

  private async unseal(id: string, s: Sealed): Promise<Uint8Array> {
    const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: s.iv, additionalData: enc.encode('hush vault v1\0' + id) }, this.key, s.ct);
    return new Uint8Array(pt);
  }

  /**
   * The core's store key: 32 random bytes, made on first use and kept
   * sealed in the vault.
   */
  async storeKey(): Promise<Uint8Array> {
    const s = (await req(this.db.transaction(KEYS).objectStore(KEYS).get('store'))) as Sealed | undefined;
    if (s) return this.unseal('\0store-key', s);
    const k = crypto.getRandomValues(new Uint8Array(32));
    const sealed = await this.seal('\0store-key', k);
    const tx = this.db.transaction(KEYS, 'readwrite');
    tx.objectStore(KEYS).add(sealed, 'store');
    try {
      await done(tx);
      return k;
    } catch {
      k.fill(0);
      return this.storeKey(); // another tab made it first
    }
  }

  /** Every row, unsealed: [row id, value]. */
  async load(): Promise<Array<[string, Uint8Array]>> {
    const tx = this.db.transaction(ROWS);
    const store = tx.objectStore(ROWS);
    const [keys, values] = await Promise.all([req(store.getAllKeys()), req(store.getAll())]);
    return Promise.all(keys.map(async (k, i) => [k as string, await this.unseal(k as string, values[i] as Sealed)] as [string, Uint8Array]));
  }

  /** Writes one transaction of the core: puts and deletes together. */
  async persist(puts: Array<[string, Uint8Array<ArrayBuffer>]>, dels: string[]): Promise<void> {
    // Seal first: an IndexedDB transaction closes at the first await
    // that is not one of its own requests.
    const sealed = await Promise.all(puts.map(async ([id, v]) => [id, await this.seal(id, v)] as const));
    const tx = this.db.transaction(ROWS, 'readwrite', { durability: 'strict' });
    const store = tx.objectStore(ROWS);
    for (const [id, s] of sealed) store.put(s, id);
    for (const id of dels) store.delete(id);
    await done(tx);
  }

  /** Deletes the vault: the account on this browser is gone. */
  static async destroy(name = 'hush'): Promise<void> {
    await req(indexedDB.deleteDatabase(name) as unknown as IDBRequest<unknown>);
  }

  close() {
    this.db.close();
  }
}
