/**
 * Cryptokey routing table: a binary prefix trie per address family, longest-prefix match (wireguard-go
 * allowedips.go). Outbound: destination -> peer. Inbound: a decrypted packet's source must map to the peer
 * that sent it.
 */

interface TrieNode<T> {
  children: [TrieNode<T> | undefined, TrieNode<T> | undefined];
  value: T | undefined;
}

function newNode<T>(): TrieNode<T> {
  return { children: [undefined, undefined], value: undefined };
}

function bitAt(addr: Uint8Array, i: number): 0 | 1 {
  return ((addr[i >> 3] >> (7 - (i & 7))) & 1) as 0 | 1;
}

export class AllowedIps<T> {
  #v4: TrieNode<T> = newNode();
  #v6: TrieNode<T> = newNode();

  #root(addr: Uint8Array): TrieNode<T> {
    if (addr.length === 4) return this.#v4;
    if (addr.length === 16) return this.#v6;
    throw new Error(`address must be 4 or 16 bytes, got ${addr.length}`);
  }

  /** Maps addr/prefix to value (replacing a previous owner of exactly this prefix, as `wg set` does). */
  insert(addr: Uint8Array, prefix: number, value: T): void {
    let node = this.#root(addr);
    if (prefix < 0 || prefix > addr.length * 8) throw new Error(`prefix ${prefix} out of range`);
    for (let i = 0; i < prefix; i++) {
      const b = bitAt(addr, i);
      node = node.children[b] ??= newNode();
    }
    node.value = value;
  }

  /** Longest-prefix match; undefined when no prefix covers addr. */
  lookup(addr: Uint8Array): T | undefined {
    let node: TrieNode<T> | undefined = addr.length === 4
      ? this.#v4
      : addr.length === 16
      ? this.#v6
      : undefined;
    let best: T | undefined;
    const bits = addr.length * 8;
    for (let i = 0; node; i++) {
      if (node.value !== undefined) best = node.value;
      if (i === bits) break;
      node = node.children[bitAt(addr, i)];
    }
    return best;
  }

  /** Removes addr/prefix if value owns exactly that prefix (UAPI `allowed_ip=-...`); returns whether it did. */
  remove(addr: Uint8Array, prefix: number, value: T): boolean {
    let node: TrieNode<T> | undefined = this.#root(addr);
    if (prefix < 0 || prefix > addr.length * 8) throw new Error(`prefix ${prefix} out of range`);
    for (let i = 0; node && i < prefix; i++) node = node.children[bitAt(addr, i)];
    if (!node || node.value !== value) return false;
    node.value = undefined;
    return true;
  }

  /** Removes every prefix owned by value. */
  removeValue(value: T): void {
    const walk = (n: TrieNode<T> | undefined): void => {
      if (!n) return;
      if (n.value === value) n.value = undefined;
      walk(n.children[0]);
      walk(n.children[1]);
    };
    walk(this.#v4);
    walk(this.#v6);
  }

  /** Every (address bytes, prefix) owned by value. */
  entriesFor(value: T): { addr: Uint8Array; prefix: number }[] {
    const out: { addr: Uint8Array; prefix: number }[] = [];
    const walk = (n: TrieNode<T> | undefined, bits: number[], len: number) => {
      if (!n) return;
      if (n.value === value) {
        const addr = new Uint8Array(len / 8);
        bits.forEach((b, i) => {
          if (b) addr[i >> 3] |= 1 << (7 - (i & 7));
        });
        out.push({ addr, prefix: bits.length });
      }
      walk(n.children[0], [...bits, 0], len);
      walk(n.children[1], [...bits, 1], len);
    };
    walk(this.#v4, [], 32);
    walk(this.#v6, [], 128);
    return out;
  }
}
